"""What the check scripts (check-gguf-export.py, check-tensorboard.py, check-report.py) share:
their Python packages, installed once into $ZOTUNE_HOME/<folder> and put on the path, the fixture
model they train, and failing with their name."""
import os
import subprocess
import sys

HOME = os.environ.get("ZOTUNE_HOME", os.path.expanduser("~/.cache/zotune"))
FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../Tests/ZOTuneTests/Fixtures/opt/opt-tiny-f32")


def install(folder, pinned, env=None):
    """pip-installs `pinned` (a list of requirements) into $ZOTUNE_HOME/folder unless done before,
    and puts that folder first on sys.path."""
    packages = os.path.join(HOME, folder)
    marker = os.path.join(packages, ".complete-" + "-".join(pinned))
    if not os.path.exists(marker):
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--target", packages, *pinned], check=True, env=env)
        open(marker, "w").close()
    sys.path.insert(0, packages)
    return packages


def fail(script, message):
    sys.exit(f"{script}: FAILED: {message}")
