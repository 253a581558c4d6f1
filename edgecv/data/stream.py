"""tf.data input for a :class:`~edgecv.data.Split`, in memory or streamed from disk.

TensorFlow is imported inside the function, so ``edgecv.data`` stays importable without it.

Streamed files are decoded with the same OpenCV code as the in-memory path
(:func:`edgecv.data.folder.decode_to_model`, run through ``tf.numpy_function``), not with
``tf.io.decode_image``: TensorFlow's JPEG decoder (different IDCT/upsampling defaults) and resize
do not give OpenCV's pixels, and a model must see the same pixels whichever route loaded a file.
OpenCV releases the GIL while decoding, so the parallel map really runs in parallel.
"""

from __future__ import annotations

from edgecv.errors import DataError

STREAM_CHUNK = 64  # files decoded per tf.numpy_function call


def image_label_dataset(split, height: int, width: int, channels: int, *,
                        shuffle: bool = False, seed: int = 0):
    """An unbatched ``tf.data.Dataset`` of (uint8 (H, W, C) image, int64 label) for ``split``.

    In-memory split: ``from_tensor_slices``. Streamed split: the (path, label) pairs are sliced
    and the files are read and decoded in a parallel map (``AUTOTUNE``, chunks of
    :data:`STREAM_CHUNK` files), in order.
    ``shuffle`` (default False) reshuffles the whole split every epoch with ``seed`` (default 0)
    *before* decoding, so a streamed split shuffles file names, not decoded images.
    Do not ``.cache()`` a streamed split in memory: that is what streaming avoids.
    """
    from edgecv.tf_import import import_tensorflow

    tf = import_tensorflow()
    shape = (height, width, channels)
    if tuple(split.shape) != shape:
        raise DataError(f"the split holds {split.shape} images, the model needs {shape}; "
                        f"load the dataset at the model's input size.")
    if not split.streamed:
        ds = tf.data.Dataset.from_tensor_slices((split.x, split.y))
        if shuffle:
            ds = ds.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
        return ds

    import numpy as np

    from edgecv.data.folder import decode_to_model

    ds = tf.data.Dataset.from_tensor_slices((split.paths, split.y))
    if shuffle:
        ds = ds.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)

    def decode(paths):
        return np.stack([decode_to_model(p.decode(), height, width, channels) for p in paths])

    def load(paths, labels):
        images = tf.numpy_function(decode, [paths], tf.uint8, stateful=False)
        images.set_shape((None, *shape))
        return images, labels

    # Files go to the decoder in chunks: one numpy_function call per small file costs about as
    # much as decoding it (measured ~1,000 vs ~2,000 CIFAR JPEGs/s on 2 busy cores).
    # unbatch() cannot know how many images come out, so the count is restated: every file was
    # validated when the folder was scanned and one that fails now stops training naming it,
    # none is dropped. Without it Keras learns an epoch's length by running out of data in
    # epoch 1 ("Your input ran out of data; interrupting training") and, every epoch, asks
    # for one batch past the end.
    return (ds.batch(STREAM_CHUNK)
            .map(load, num_parallel_calls=tf.data.AUTOTUNE)
            .unbatch()
            .apply(tf.data.experimental.assert_cardinality(len(split))))
