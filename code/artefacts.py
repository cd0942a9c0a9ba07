"""Writing results and figures: atomically, deterministically, and with their provenance.

Every number the README or the book shows is read from a file this module wrote. Files are written
to a temporary name and renamed, so an interrupted run never leaves half a file; JSON is written with
sorted keys and floats rounded to 10 significant digits, and figures without time stamps, so the
same computation gives the same bytes and ``make figures`` twice in a row changes nothing in git.
Provenance is a hash of the package's source files plus the versions of the numerical libraries, not
the git revision: committing a result must not make the result out of date. Nor does a later commit: a
result whose numbers and settings are unchanged is not rewritten because the code's hash moved on
(:func:`write_json` keeps the file), so a fresh clone stays clean after ``make figures``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "results"
FIGURES_DIR = REPO_ROOT / "figures"
SIGNIFICANT_DIGITS = 10


def _round_floats(obj: Any) -> Any:
    """Round every float to SIGNIFICANT_DIGITS significant digits; NaN/inf become strings."""
    if isinstance(obj, float):
        if not math.isfinite(obj):
            return str(obj)
        return float(f"{obj:.{SIGNIFICANT_DIGITS}g}")
    if isinstance(obj, dict):
        return {str(k): _round_floats(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_round_floats(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return _round_floats(obj.tolist())
    return obj


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Provenance fields that say which code and libraries made a file, not what it holds: a file whose content
#: differs from a new result only in these is kept as it is (:func:`write_json`).
CHURNING_PROVENANCE = ("source_hash", "versions")


def content(obj: Any) -> Any:
    """``obj`` as its JSON file holds it (rounded floats, string keys, lists), without the fields of every
    ``provenance`` block that name the code and library versions (:data:`CHURNING_PROVENANCE`): what two results
    must share to be the same result."""
    def strip(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: ({f: g for f, g in strip(v).items() if f not in CHURNING_PROVENANCE}
                        if k == "provenance" and isinstance(v, dict) else strip(v)) for k, v in x.items()}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    return strip(json.loads(json.dumps(_round_floats(obj))))


def write_json(path: str | os.PathLike, obj: Any, keep_unchanged: bool = True) -> Path:
    """Write ``obj`` as deterministic JSON (sorted keys, rounded floats, trailing newline), atomically.

    With ``keep_unchanged`` an existing file whose :func:`content` equals ``obj``'s is left byte for byte as it
    is: a result recomputed by later code is the same result, and its file keeps the provenance of the code
    that first made it, so ``make figures`` on a clean clone changes nothing that git tracks. The provenance
    then still names code that produced these exact numbers.
    """
    path = Path(path)
    if keep_unchanged and path.is_file():
        try:
            if content(json.loads(path.read_text())) == content(obj):
                return path
        except (ValueError, UnicodeDecodeError):  # not JSON (a half-written file of old): write it anew
            pass
    text = json.dumps(_round_floats(obj), indent=2, sort_keys=True) + "\n"
    return atomic_write_bytes(path, text.encode())


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing file names the make target likely to produce it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; regenerate it with `make figures` or the "
                                f"matching `make reproduce-<item>` target")
    return json.loads(path.read_text())


def repo_relative(path: str | os.PathLike) -> str:
    """``path`` relative to the repository when it lies inside it, else as given (for messages and records).

    Inside means by its own name first (``checkpoints/x`` stays relative when ``checkpoints`` is a link to another
    disk), then with links resolved (a path given through a link to the repository)."""
    for candidate in (Path(os.path.abspath(path)), Path(path).resolve()):
        try:
            return str(candidate.relative_to(REPO_ROOT))
        except ValueError:
            pass
    return str(path)


def source_hash() -> str:
    """SHA-256 (first 16 hex digits) of the package's Python sources, in sorted file order."""
    h = hashlib.sha256()
    for f in sorted((REPO_ROOT / "code").glob("*.py")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def library_versions() -> dict[str, str]:
    """Versions of Python and of the numerical libraries that can change a result."""
    versions = {"python": platform.python_version()}
    for name in ("torch", "numpy", "scipy", "matplotlib"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:  # pragma: no cover - all are requirements
            versions[name] = "not installed"
    return versions


def provenance(**fields: Any) -> dict[str, Any]:
    """Provenance block for an artefact: source hash, library versions and any given fields
    (seed, scale, config, sample sizes, ...)."""
    return {"source_hash": source_hash(), "versions": library_versions(), **fields}


def save_figure(fig, item_id: str, figures_dir: str | os.PathLike = FIGURES_DIR, dpi: int = 150) -> list[Path]:
    """Save a matplotlib figure as ``<item_id>.png`` and ``<item_id>.pdf`` (vector), deterministically.

    Time stamps and software tags are left out of both files so equal figures give equal bytes.
    """
    import io

    out = []
    for ext, metadata in (("png", {"Software": None}), ("pdf", {"CreationDate": None, "Producer": None})):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=dpi, metadata=metadata, bbox_inches="tight")
        out.append(atomic_write_bytes(Path(figures_dir) / f"{item_id}.{ext}", buf.getvalue()))
    return out
