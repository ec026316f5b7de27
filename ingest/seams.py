"""The check at the door for the interfaces other apps implement: Embedder, Generator, Reranker.

Each interface is an ABC that declares every member the code uses: abstract methods, required attributes
as bare annotations (`dim: int`, which an instance attribute, a class attribute or a property fulfils),
and optional members with their defaults on the class (`query_prefix: str = ""`). `require` checks an
object against one before it is used, so an object that doesn't fit fails where it is passed in, naming
what it lacks, not later as a confusing load error or an AttributeError deep in a search.
This module defines no interface itself; they live with their real implementations.
"""

from __future__ import annotations

import inspect
from typing import TypeVar

from ingest.errors import RagError

T = TypeVar("T")
_ABSENT = object()


def declared(seam: type) -> tuple[list[str], list[str]]:
    """(required, optional) members of an interface, in the order its class body declares them."""
    own = vars(seam)
    annotated = list(inspect.get_annotations(seam))
    required = [n for n in annotated if n not in own]
    required += [n for n, v in own.items() if getattr(v, "__isabstractmethod__", False)]
    optional = [n for n in dict.fromkeys([*annotated, *own]) if n in own and n not in required and n[0] != "_"]
    return required, optional


def missing(obj: object, seam: type) -> list[str]:
    """The members of `seam` that `obj` has neither itself nor from its class. Properties are found, not
    called (a lazy `dim` that loads the model stays lazy)."""
    required, optional = declared(seam)
    names = [*required, *optional] if isinstance(obj, seam) else required
    return [n for n in names if inspect.getattr_static(obj, n, _ABSENT) is _ABSENT]


def require(obj: T, seam: type, argument: str) -> T:
    """`obj` itself if it is an instance of `seam` with every member `seam` declares; else RagError.

    Args:
        obj: what the caller passed (not a spec string: those are the caller's to resolve).
        seam: the interface, e.g. Embedder.
        argument: the parameter it was passed as, for the message (e.g. "embed_model").
    """
    name, kind = type(obj).__name__, seam.__name__
    article = "an" if kind[0] in "AEIOU" else "a"
    lacks = missing(obj, seam)
    if not isinstance(obj, seam):
        why = f"missing {', '.join(lacks)}" if lacks else f"it has the members but does not subclass {kind}"
        raise RagError(
            f"{argument}: {name} is not {article} {kind}: {why}",
            f"subclass rag.{kind} (it declares what is required and gives optional members their defaults), "
            "or pass a model's hub id or folder",
        )
    if lacks:
        raise RagError(
            f"{argument}: {name} is an incomplete {kind}: missing {', '.join(lacks)}",
            f"set them in __init__ or on the class; help(rag.{kind}) describes each",
        )
    return obj
