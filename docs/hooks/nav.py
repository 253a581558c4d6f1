"""MkDocs hook: the phone deployment page (``docs/deployment.md``) joins the Guides when it
exists, so the nav never names a page that is not there and a strict build never misses one."""

from pathlib import Path

PAGE = "deployment.md"


def on_config(config):
    """Add ``deployment.md`` to the Guides section of the nav if the file exists."""
    if not (Path(config.docs_dir) / PAGE).exists():
        return config
    for section in config.nav or []:
        if isinstance(section, dict) and "Guides" in section:
            guides = section["Guides"]
            if not any(PAGE in str(item) for item in guides):
                guides.append({"Deploying to a phone": PAGE})
    return config
