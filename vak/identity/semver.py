"""Semantic Versioning 2.0.0: parse a version and order two by precedence.

Example::

    >>> Version.parse("1.0.0-rc.1") < Version.parse("1.0.0")
    True
    >>> Version.parse("1.0.0-alpha.10") > Version.parse("1.0.0-alpha.9")
    True
    >>> Version.parse("1.0.0+build.5") == Version.parse("1.0.0+other")
    True

Precedence (semver.org, section 11): major, minor and patch compare
numerically; a version with a pre-release is lower than the same version
without one; pre-release identifiers compare one by one, numeric ones
numerically, alphanumeric ones in ASCII order, numeric lower than
alphanumeric, and a longer list wins when all shared identifiers are equal.
Build metadata is ignored: two versions differing only there are equal.

Numbers are compared as digit strings (length, then text), which is exact
because semver forbids leading zeros; so a hostile version with a
ten-thousand-digit component costs no big-integer conversion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["MAX_VERSION_LENGTH", "Version"]

#: longer strings are refused before matching (a version has no reason to be long)
MAX_VERSION_LENGTH = 256

_NUM = r"0|[1-9]\d*"
_PRE_ID = r"0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*"
_BUILD_ID = r"[0-9a-zA-Z-]+"
_SEMVER = re.compile(
    rf"(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>(?:{_PRE_ID})(?:\.(?:{_PRE_ID}))*))?"
    rf"(?:\+(?P<build>{_BUILD_ID}(?:\.{_BUILD_ID})*))?",
    re.ASCII,
)

#: one pre-release identifier's sort key: numeric (0, digits) before alphanumeric (1, text)
_IdKey = tuple[int, int, str]
_Num = tuple[int, str]
_Key = tuple[_Num, _Num, _Num, int, tuple[_IdKey, ...]]


def _number(digits: str) -> _Num:
    return len(digits), digits


def _id_key(ident: str) -> _IdKey:
    if ident.isdigit():
        return 0, len(ident), ident
    return 1, 0, ident


@dataclass(frozen=True, slots=True)
class Version:
    """A parsed semantic version; comparisons follow semver precedence."""

    major: str
    minor: str
    patch: str
    pre: tuple[str, ...] = ()
    build: tuple[str, ...] = ()
    _key: _Key = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # a release (no pre-release) sorts after every pre-release of the same core
        key: _Key = (_number(self.major), _number(self.minor), _number(self.patch),
               0 if self.pre else 1, tuple(_id_key(i) for i in self.pre))
        object.__setattr__(self, "_key", key)

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse ``MAJOR.MINOR.PATCH[-PRE][+BUILD]``.

        Raises:
            ValueError: ``text`` is not a semantic version 2.0.0 string.
        """
        if not isinstance(text, str) or len(text) > MAX_VERSION_LENGTH:
            raise ValueError("not a semantic version (not a string, or too long)")
        match = _SEMVER.fullmatch(text)
        if match is None:
            raise ValueError(f"{text[:60]!r} is not a semantic version such as '1.2.3'")
        pre, build = match["pre"], match["build"]
        return cls(match["major"], match["minor"], match["patch"],
                   tuple(pre.split(".")) if pre else (), tuple(build.split(".")) if build else ())

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.pre:
            text += "-" + ".".join(self.pre)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __lt__(self, other: Version) -> bool:
        return self._key < other._key

    def __le__(self, other: Version) -> bool:
        return self._key <= other._key

    def __gt__(self, other: Version) -> bool:
        return self._key > other._key

    def __ge__(self, other: Version) -> bool:
        return self._key >= other._key
