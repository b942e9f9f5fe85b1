"""Type stubs of the `weft` extension module (distribution `weft-embed`).

Ids, rows and starts are 0-based. Embeddings: any 2-D array-like of floats; a C-contiguous
float32 array is read in place, anything else is converted once. Every call releases the GIL
while it computes.
"""

from os import PathLike
from types import TracebackType
from typing import Callable, Literal, Sequence, TypedDict, Union, final, overload

import numpy as np
import numpy.typing as npt

__all__ = ["__version__", "Cache", "diversity", "diversity_cache", "open_cache", "similarity", "topk"]

__version__: str

_ArrayLike = npt.ArrayLike
_StrPath = Union[str, "PathLike[str]"]

class _CacheInfo(TypedDict):
    """The dict `diversity_cache` and `Cache.info()` return."""

    n: int
    d: int
    done: int
    complete: bool
    id_width: Literal[2, 4]
    hash: str

def similarity(
    embeddings: _ArrayLike, *, threads: int | None = None
) -> npt.NDArray[np.float32]:
    """The (N, N) float32 cosine similarity matrix of the rows."""

def topk(
    embeddings: _ArrayLike, k: int, *, threads: int | None = None
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.float32]]:
    """(ids, scores) of each row's k nearest neighbours, both (N, k), best first.

    >>> ids, scores = weft.topk(E, 10)
    """

@overload
def diversity(
    embeddings: _ArrayLike,
    starts: int,
    *,
    length: int | None = None,
    threads: int | None = None,
) -> npt.NDArray[np.uint32]: ...
@overload
def diversity(
    embeddings: _ArrayLike,
    starts: Sequence[int] | npt.NDArray[np.integer],
    *,
    length: int | None = None,
    threads: int | None = None,
) -> npt.NDArray[np.uint32]: ...
def diversity_cache(
    embeddings: _ArrayLike,
    path: _StrPath,
    *,
    resume: bool = False,
    force: bool = False,
    threads: int | None = None,
    progress: bool | Callable[[int, int], object] = True,
) -> _CacheInfo:
    """Every diversity ordering into the resumable cache file `path`; returns its info."""

@final
class Cache:
    """A diversity cache opened for reading; a context manager."""

    @property
    def closed(self) -> bool: ...
    def __len__(self) -> int: ...
    def __getitem__(self, start: int, /) -> npt.NDArray[np.uint32]: ...
    def info(self) -> _CacheInfo: ...
    def is_done(self, start: int) -> bool: ...
    def close(self) -> None: ...
    def __enter__(self) -> Cache: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]: ...

def open_cache(path: _StrPath) -> Cache:
    """Opens a diversity cache file for reading."""
