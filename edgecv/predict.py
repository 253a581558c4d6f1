"""``edgecv predict MODEL IMAGE_OR_FOLDER...``: classify image files with any artifact.

The same path as camera and bench: :func:`edgecv.runtime.open_backend` ->
:class:`edgecv.classify.Classifier`. Each image gives one record ``{"path", "label", "score",
"top_k": [{"label", "score"}...], "ms"}``; an image that cannot be read gives
``{"path", "error"}`` (as does one whose pixels the model cannot take) and the others go on.
The files come from :func:`edgecv.images.image_paths`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from edgecv.classify import Classifier
from edgecv.errors import DataError, ModelFileError
from edgecv.images import read_image


def predict_files(classifier: Classifier, paths: Iterable[Path]) -> Iterator[dict]:
    """One record per path, in order. A file that cannot be read, or that decodes to pixels
    the model cannot take (e.g. a gray+alpha image, which no conversion rule covers), is a
    ``{"path", "error"}`` record; the other files go on."""
    for path in paths:
        try:
            image = read_image(path)
        except DataError as exc:
            yield {"path": str(path), "error": str(exc)}
            continue
        try:
            prediction = classifier.classify(image)
        except (DataError, ModelFileError) as exc:  # preprocessing, or the runtime on this input
            yield {"path": str(path), "error": f"{path}: {exc}"}
            continue
        yield {"path": str(path), **prediction.to_dict()}
