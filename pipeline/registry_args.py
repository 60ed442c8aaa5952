"""--registry / --arch, shared by the commands that rebuild: resolve the registry once, here."""

import difflib
import os
from collections.abc import Mapping

from .cli import UsageError

DEFAULT_REGISTRY = os.path.join("configs", "architectures.yaml")


def add_registry_arguments(parser):
    parser.add_argument("--registry", metavar="FILE",
                        help=f"architecture registry (default: {DEFAULT_REGISTRY} if it exists)")
    parser.add_argument("--arch", metavar="NAME", help="use only this registered architecture")


class LazyLayouts(Mapping):
    """The registry, resolved on first use: it is the last source tried, and builders cost seconds."""

    def __init__(self, resolve):
        self._resolve = resolve
        self._layouts = None

    @property
    def resolved(self) -> bool:
        """False until first use: the engine then skips the registry as a mere cross-check."""
        return self._layouts is not None

    def _get(self) -> dict:
        if self._layouts is None:
            self._layouts = self._resolve()
        return self._layouts

    def __getitem__(self, name):
        return self._get()[name]

    def __iter__(self):
        return iter(self._get())

    def __len__(self):
        return len(self._get())


def no_registry_found() -> str:
    """Where the default registry was looked for, for messages that say none was used."""
    return f"looked for the default {DEFAULT_REGISTRY} in {os.getcwd()}"


def _check_arch(arch: str | None, entries, path: str) -> None:
    """An --arch the registry does not have is a typo to report now, not after every builder ran."""
    if arch is None or arch in entries:
        return
    close = difflib.get_close_matches(arch, list(entries), n=3, cutoff=0.5)
    known = ", ".join(sorted(entries)) or "none"
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise UsageError(f"--arch {arch} is not registered in {path} (registered: {known}){hint}")


def registry_in_use(args) -> str | None:
    """The registry file a command uses (--registry, else the default where it exists), as a command run
    from any directory can name it (a local path made absolute); None when there is none."""
    path = args.registry or (DEFAULT_REGISTRY if os.path.exists(DEFAULT_REGISTRY) else None)
    return absolute_location(path) if path else None


def absolute_location(path: str) -> str:
    """A local path made absolute; a URL (gs://, s3://, ...) as it is."""
    return path if "://" in path else os.path.abspath(path)


def registry_layouts_from_args(args, lazy: bool = False) -> "Mapping | None":
    """Registry entries resolved into plain layouts (builders run here, with TensorFlow), or None.

    The file is validated now either way; with `lazy`, builders run only if the registry is consulted.
    """
    path = args.registry
    if path is None:
        if not os.path.exists(DEFAULT_REGISTRY):
            if getattr(args, "arch", None):
                raise UsageError(f"--arch {args.arch} needs a registry, and none was found: {no_registry_found()}; "
                                 "pass --registry FILE")
            return None
        path = DEFAULT_REGISTRY
    from recovery.registry import load_registry

    from .builders import RegistryError, resolve_registry

    def resolve():
        try:
            return resolve_registry(path, only=getattr(args, "arch", None))
        except (RegistryError, OSError) as exc:
            raise UsageError(f"registry {path}: {exc}") from None

    try:
        registry = load_registry(path)
    except (RegistryError, OSError) as exc:
        raise UsageError(f"registry {path}: {exc}") from None
    _check_arch(getattr(args, "arch", None), registry.entries, path)
    return LazyLayouts(resolve) if lazy else resolve()
