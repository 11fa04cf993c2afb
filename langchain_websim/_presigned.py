"""Methods whose bound form carries its signature, computed once.

langchain-core asks ``inspect.signature(self._agenerate)`` (and ``self._generate``) on
every call, to learn whether the method takes ``run_manager``.  ``inspect`` builds a new
signature for a bound method each time: about 13 µs a call from the function's
annotations, and still 4 µs from a precomputed ``__signature__`` on the function, because
it then drops ``self`` from it and validates the rest anew.  On a fast service that was the
largest single cost ChatWebsim added to a call.  The bound form made here carries the
bound signature ready-made, which ``inspect`` returns as it is.

Only the instance attribute changes: on the class the method is the plain function (so
langchain-core's ``type(self)._agenerate is not BaseChatModel._agenerate`` checks and
documentation tools see what they always saw), and a subclass that overrides the method
gets an ordinary method.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["presign"]


def presign(owner: type, name: str) -> None:
    """Replace ``owner.name`` (a function) by a descriptor that binds it with its signature."""
    function = owner.__dict__[name]
    if not inspect.isfunction(function):
        raise TypeError(f"{owner.__name__}.{name} is not a plain function")
    setattr(owner, name, _Presigned(function))


class _Presigned:
    """The descriptor: the function on the class, a pre-signed bound method on an instance."""

    __slots__ = ("function", "signature")

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        unbound = inspect.signature(function)
        bound = list(unbound.parameters.values())[1:]  # without ``self``
        self.signature = unbound.replace(parameters=bound)

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self.function
        return _PresignedMethod(self.function, instance, self.signature)


class _PresignedMethod:
    """``function`` bound to ``instance``; ``inspect.signature`` reads ``__signature__``."""

    __slots__ = ("__func__", "__self__", "__signature__")

    def __init__(self, function: Callable[..., Any], instance: object, signature: Any) -> None:
        self.__func__ = function
        self.__self__ = instance
        self.__signature__ = signature

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__func__(self.__self__, *args, **kwargs)

    @property
    def __name__(self) -> str:
        return str(self.__func__.__name__)

    def __repr__(self) -> str:
        return f"<pre-signed bound method {self.__func__.__qualname__} of {self.__self__!r}>"
