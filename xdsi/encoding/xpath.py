"""The client XPath filter of WADO-WS RetrieveImagingDocumentSetInformation (PS3.18 2017b 6.4.3),
evaluated over a PS3.19 Native DICOM Model document in a sandbox.

PS3.18 6.4.3 lets the client send an XPath 1.0 expression per document; the answer is what it
selects from the instance's Native DICOM Model. A client-written XPath is hostile until proven
not, and libxml2 (lxml's XPath) can neither be interrupted nor bounded: nested ``count(//*)``
predicates are O(n^k), and each ``//`` step over a large node-set merges with a quadratic
duplicate check (measured on a 51,000-element document: ``//*//*`` 1 s, ``count(//*[count(//*)>0])``
5 minutes). So this module parses the expression itself against an allow-listed grammar and
evaluates it with its own small XPath 1.0 interpreter, which charges every node it visits and
every character it builds to a work budget and checks a deadline: any expression, however
written, stops within the bound (``XPathTooCostly``). tests/unit/encoding/test_xpath.py holds
its answers to lxml's on the same documents.

The subset: location paths over the child, attribute, self, parent, descendant(-or-self),
ancestor(-or-self) and sibling axes, with abbreviations (``/ // . .. @``) and predicates; name
tests of the Native DICOM Model's elements and attributes, ``*``, ``text()`` and ``node()``;
union, comparison, boolean and arithmetic operators; the XPath 1.0 core functions listed in
``FUNCTIONS``. Not offered: variables (none are bound), ``id()``, ``lang()``, extension
functions (any prefixed function name, e.g. ``document()``-like EXSLT), comment and
processing-instruction tests, the namespace/following/preceding axes.

The namespace rule. PS3.19 A.1.6 puts every element of the model in the namespace
``http://dicom.nema.org/PS3.19/models/NativeDICOM`` while its own XPath example (A.1.7) and the
pre-namespace editions write names without a prefix. So an unprefixed element name means the
model's element of that name (XPath 2.0's default element namespace, set to the model), and a
prefixed one is accepted when the client binds the prefix to the model's namespace (the
namespaces in scope of its ``XPath`` element, passed as ``namespaces``); a prefix bound
elsewhere, or not at all, is refused. Attribute names are unprefixed, as the model's
attributes are in no namespace, except ``xml:space``.

Results: a node-set in document order, a string, a number or a boolean. ``to_text`` gives the
string the XPathResponse element carries (XSD: xs:string): the XPath string of a scalar; for
nodes, the XML of each selected element (a PS3.19 fragment), or, when other nodes are selected,
each node's string-value joined by a backslash, the DICOM multi-value delimiter (PS3.5 6.2).
"""

from __future__ import annotations

import math
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeAlias

from lxml import etree

from xdsi.errors import InvalidXPath, UnsupportedXPath, XPathTooCostly

NAMESPACE = "http://dicom.nema.org/PS3.19/models/NativeDICOM"
XML_NAMESPACE = "http://www.w3.org/XML/1998/namespace"

# PS3.19 A.1.6 (RELAX NG of the model): its elements and their attributes.
ELEMENTS = frozenset((
    "NativeDicomModel", "DicomAttribute", "Value", "Item", "PersonName", "Alphabetic", "Ideographic",
    "Phonetic", "FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix", "BulkData", "InlineBinary",
))
ATTRIBUTES = frozenset(("tag", "vr", "keyword", "privateCreator", "number", "uri", "uuid"))

# Bounds of the sandbox. An expression of 1,024 characters covers every real filter (the PS3.19
# example has 137). WORK_LIMIT units (a node visited or selected, 64 characters built) took
# 0.3-0.5 s on a shared 2-core machine; a filter that finds one attribute among 51,000 elements
# spends about 30,000. TIME_LIMIT_S stops what the units misjudge (a busy machine, a collector
# pass), checked every 1,024 units.
MAX_EXPRESSION_CHARS = 1024
MAX_NESTING = 24
WORK_LIMIT = 250_000
TIME_LIMIT_S = 0.3
MAX_RESULT_NODES = 10_000
MAX_RESULT_CHARS = 4 * 1024 * 1024
# A string built by a function costs one unit per this many characters.
_CHARS_PER_UNIT = 64


# ---------------------------------------------------------------------------------------------
# Nodes of the data model (XPath 1.0 section 5): the root, elements (lxml), attributes, text.

class Root:
    """The document node, parent of NativeDicomModel."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Root()"


@dataclass(frozen=True, slots=True)
class Attribute:
    owner: etree._Element
    index: int
    name: str  # Clark notation, as lxml's attrib keys
    value: str


@dataclass(frozen=True, slots=True)
class Text:
    """The text node of a leaf element (Value, a name component, InlineBinary).

    A Native DICOM Model document has no mixed content (PS3.19 A.1.6), so an element's text
    is its only text node; the tails lxml keeps for mixed content do not occur.
    """

    owner: etree._Element


Node: TypeAlias = "Root | etree._Element | Attribute | Text"
Value: TypeAlias = "list[Node] | str | float | bool"
ROOT = Root()


class Document:
    """A Native DICOM Model tree with the document order of its elements, built once per document."""

    def __init__(self, root: etree._Element) -> None:
        if etree.QName(root).localname != "NativeDicomModel":
            raise ValueError("not a NativeDicomModel document")
        self.root = root
        elements = list(root.iter(etree.Element))
        # The dict also keeps every element's lxml proxy alive, so identity and hashing stay stable.
        self.order: dict[etree._Element, int] = {e: i for i, e in enumerate(elements)}
        self.last = list(range(len(elements)))  # preorder index of each element's last descendant
        for i in range(len(elements) - 1, 0, -1):
            parent = self.order[elements[i].getparent()]
            if self.last[i] > self.last[parent]:
                self.last[parent] = self.last[i]

    @classmethod
    def from_bytes(cls, data: bytes) -> Document:
        """A document from the bytes ``native_xml`` writes (trusted: xdsi's own serialization)."""
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)
        return cls(etree.fromstring(data, parser=parser))

    def key(self, node: Node) -> int:
        """Document order (XPath 1.0 5): an element, then its attributes, its text, its children.

        An int, not a tuple: ints are not tracked by the garbage collector, whose full passes
        over a large document's nodes would otherwise stall a sort of many nodes.
        """
        if isinstance(node, Root):
            return -1
        if isinstance(node, Attribute):
            return self.order[node.owner] * 16 + 1 + node.index  # the model has at most 5 attributes
        if isinstance(node, Text):
            return self.order[node.owner] * 16 + 15
        return self.order[node] * 16

    def subtree_size(self, node: Node) -> int:
        if isinstance(node, Root):
            return len(self.order)
        if isinstance(node, etree._Element):
            i = self.order[node]
            return self.last[i] - i + 1
        return 1


# ---------------------------------------------------------------------------------------------
# Lexer (XPath 1.0 3.7), with the disambiguation rules for '*' and operator names.

_NCNAME = r"[^\W\d][\w.\-]*"
_TOKEN = re.compile(
    rf"""\s*(?:
      (?P<number>\d+(?:\.\d*)?|\.\d+)
    | (?P<literal>"[^"]*"|'[^']*')
    | (?P<punct>\.\.|::|//|!=|<=|>=|[()\[\].@,/|=<>+*\-$])
    | (?P<name>{_NCNAME}(?::(?:{_NCNAME}|\*))?)
    )""",
    re.VERBOSE,
)
_OPERATOR_NAMES = frozenset(("and", "or", "mod", "div"))
_NODE_TYPES = frozenset(("node", "text", "comment", "processing-instruction"))
# XPath 1.0 3.7: after these (or an operator), '*' is a name test and 'and' a name, not operators.
_BEFORE_OPERAND = frozenset(("@", "::", "(", "[", ",", "/", "//", "|", "+", "-", "=", "!=", "<", "<=", ">", ">="))


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # number literal op name func nodetype axis punct
    text: str
    at: int


def tokenize(expression: str) -> list[Token]:
    tokens: list[Token] = []
    pos, end = 0, len(expression.rstrip())
    while pos < end:
        m = _TOKEN.match(expression, pos)
        if m is None or m.end() == pos:
            raise InvalidXPath(f"XPath: unexpected character {expression[pos:].lstrip()[:1]!r} at {pos + 1}")
        kind = m.lastgroup or ""
        text = m.group(kind)
        at = m.start(kind)
        pos = m.end()
        previous = tokens[-1] if tokens else None
        operator_context = previous is not None and previous.kind != "op" and not (
            previous.kind == "punct" and previous.text in _BEFORE_OPERAND)
        if operator_context and (text == "*" or (kind == "name" and text in _OPERATOR_NAMES)):
            tokens.append(Token("op", "*op" if text == "*" else text, at))
            continue
        if kind == "name":
            following = _TOKEN.match(expression, pos)
            nxt = following.group("punct") if following else None
            if nxt == "(":
                kind = "nodetype" if text in _NODE_TYPES else "func"
            elif nxt == "::":
                kind = "axis"
        elif kind == "punct" and text == "$":
            raise UnsupportedXPath(f"XPath: variables are not offered (at {at + 1})")
        tokens.append(Token(kind, text, at))
    return tokens


# ---------------------------------------------------------------------------------------------
# Syntax tree and parser (XPath 1.0 3.1-3.5).

@dataclass(frozen=True, slots=True)
class Step:
    axis: str
    test: str  # "node()", "text()", "*", "{ns}*" or a Clark name
    predicates: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Path:
    absolute: bool
    start: Expr | None  # a filter expression the steps continue from
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class Filter:
    primary: Expr
    predicates: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Negate:
    operand: Expr


@dataclass(frozen=True, slots=True)
class Constant:
    value: str | float


Expr: TypeAlias = "Path | Filter | Call | Binary | Negate | Constant"

_AXES = {
    "child": "child", "attribute": "attribute", "self": "self", "parent": "parent",
    "descendant": "descendant", "descendant-or-self": "descendant-or-self", "ancestor": "ancestor",
    "ancestor-or-self": "ancestor-or-self", "following-sibling": "following-sibling",
    "preceding-sibling": "preceding-sibling",
}
_ELEMENT_WALKS = frozenset(("child", "descendant"))
_REVERSE_AXES = frozenset(("parent", "ancestor", "ancestor-or-self", "preceding-sibling"))
_ANY_DESCENDANT_OR_SELF = Step("descendant-or-self", "node()", ())
_TYPE_TESTS = frozenset(("node()", "text()"))
_NUMBER_FUNCTIONS = frozenset(("last", "position", "count", "string-length", "number", "sum", "floor", "ceiling",
                               "round"))
_BINARY_LEVELS: tuple[frozenset[str], ...] = (
    frozenset(("or",)), frozenset(("and",)), frozenset(("=", "!=")), frozenset(("<", "<=", ">", ">=")),
    frozenset(("+", "-")), frozenset(("*op", "div", "mod")),
)


class _Parser:
    def __init__(self, tokens: list[Token], namespaces: Mapping[str, str]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0
        self.namespaces = namespaces

    def peek(self, offset: int = 0) -> Token | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def at(self, *texts: str) -> bool:
        token = self.peek()
        return token is not None and token.kind in ("punct", "op") and token.text in texts

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise InvalidXPath("XPath: the expression ends too early")
        self.i += 1
        return token

    def expect(self, text: str) -> None:
        token = self.take()
        if token.text != text:
            raise InvalidXPath(f"XPath: expected {text!r} at {token.at + 1}, found {token.text!r}")

    def nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise InvalidXPath(f"XPath: nested deeper than {MAX_NESTING} levels")

    def expression(self) -> Expr:
        self.nested()
        node = self.binary(0)
        self.depth -= 1
        return node

    def binary(self, level: int) -> Expr:
        if level == len(_BINARY_LEVELS):
            return self.unary()
        node = self.binary(level + 1)
        while self.at(*_BINARY_LEVELS[level]):
            node = Binary(self.take().text, node, self.binary(level + 1))
        return node

    def unary(self) -> Expr:
        if self.at("-"):
            self.take()
            self.nested()
            node: Expr = Negate(self.unary())
            self.depth -= 1
            return node
        node = self.path()
        while self.at("|"):
            self.take()
            node = Binary("|", node, self.path())
        return node

    def path(self) -> Expr:
        token = self.peek()
        if token is None:
            raise InvalidXPath("XPath: the expression ends too early")
        if token.kind in ("literal", "number", "func") or self.at("("):
            start = self.filter()
            if self.at("/", "//"):
                return Path(False, start, self.relative_steps(self.take().text == "//"))
            return start
        if self.at("/"):
            self.take()
            if self.starts_step():
                return Path(True, None, self.relative_steps(False))
            return Path(True, None, ())
        if self.at("//"):
            self.take()
            return Path(True, None, self.relative_steps(True))
        return Path(False, None, self.relative_steps(False))

    def starts_step(self) -> bool:
        token = self.peek()
        return token is not None and (token.kind in ("name", "nodetype", "axis") or self.at(".", "..", "@", "*"))

    def relative_steps(self, descendant_first: bool) -> tuple[Step, ...]:
        steps = [Step("descendant-or-self", "node()", ())] if descendant_first else []
        steps.append(self.step())
        while self.at("/", "//"):
            if self.take().text == "//":
                steps.append(Step("descendant-or-self", "node()", ()))
            steps.append(self.step())
        return _collapsed(steps)

    def step(self) -> Step:
        if self.at("."):
            self.take()
            return Step("self", "node()", ())
        if self.at(".."):
            self.take()
            return Step("parent", "node()", ())
        axis = "child"
        token = self.peek()
        if self.at("@"):
            self.take()
            axis = "attribute"
        elif token is not None and token.kind == "axis":
            self.take()
            if token.text not in _AXES:
                raise UnsupportedXPath(f"XPath: the {token.text} axis is not offered")
            axis = _AXES[token.text]
            self.expect("::")
        test = self.node_test(axis)
        return Step(axis, test, self.predicates())

    def node_test(self, axis: str) -> str:
        token = self.take()
        if token.kind == "nodetype":
            if token.text not in ("node", "text"):
                raise UnsupportedXPath(f"XPath: {token.text}() tests are not offered (no such nodes in the model)")
            self.expect("(")
            self.expect(")")
            return f"{token.text}()"
        if token.text == "*" and token.kind in ("punct", "name"):
            return "*"
        if token.kind != "name":
            raise InvalidXPath(f"XPath: expected a name test at {token.at + 1}, found {token.text!r}")
        return self.qualified(token, axis)

    def qualified(self, token: Token, axis: str) -> str:
        prefix, _, local = token.text.rpartition(":")
        if axis == "attribute":
            if prefix == "xml" and local in ("space", "*"):
                return f"{{{XML_NAMESPACE}}}{local}"
            if prefix:
                raise InvalidXPath(f"XPath: attribute {token.text!r}: the model's attributes have no namespace")
            if local != "*" and local not in ATTRIBUTES:
                raise InvalidXPath(f"XPath: the Native DICOM Model has no attribute {local!r}")
            return local
        if prefix and self.namespaces.get(prefix) != NAMESPACE:
            raise InvalidXPath(f"XPath: prefix {prefix!r} is not bound to the Native DICOM Model namespace {NAMESPACE}")
        if local == "*":
            return f"{{{NAMESPACE}}}*"
        if local not in ELEMENTS:
            raise InvalidXPath(f"XPath: the Native DICOM Model has no element {local!r}")
        return f"{{{NAMESPACE}}}{local}"

    def predicates(self) -> tuple[Expr, ...]:
        found = []
        while self.at("["):
            self.take()
            found.append(self.expression())
            self.expect("]")
        return tuple(found)

    def filter(self) -> Expr:
        token = self.take()
        primary: Expr
        if token.kind == "literal":
            primary = Constant(token.text[1:-1])
        elif token.kind == "number":
            primary = Constant(float(token.text))
        elif token.kind == "func":
            primary = self.call(token)
        else:  # "("
            primary = self.expression()
            self.expect(")")
        predicates = self.predicates()
        return Filter(primary, predicates) if predicates else primary

    def call(self, token: Token) -> Call:
        name = token.text
        if ":" in name:
            raise UnsupportedXPath(f"XPath: extension function {name}() is not offered")
        if name not in FUNCTIONS:
            raise UnsupportedXPath(f"XPath: function {name}() is not offered")
        self.expect("(")
        args: list[Expr] = []
        if not self.at(")"):
            args.append(self.expression())
            while self.at(","):
                self.take()
                args.append(self.expression())
        self.expect(")")
        low, high = FUNCTIONS[name][0]
        if not low <= len(args) <= (high if high >= 0 else len(args)):
            raise InvalidXPath(f"XPath: {name}() takes {_arity(low, high)}, not {len(args)}")
        return Call(name, tuple(args))


def _attribute_equals(expr: Expr) -> tuple[str, str | float] | None:
    """(name, constant) of a predicate ``@name = constant`` (either way round), else None."""
    if not isinstance(expr, Binary) or expr.op != "=":
        return None
    for side, other in ((expr.left, expr.right), (expr.right, expr.left)):
        if (isinstance(side, Path) and not side.absolute and side.start is None and len(side.steps) == 1
                and side.steps[0].axis == "attribute" and not side.steps[0].predicates
                and not side.steps[0].test.endswith("*") and side.steps[0].test not in _TYPE_TESTS
                and isinstance(other, Constant)):
            return side.steps[0].test, other.value
    return None


def _collapsed(steps: list[Step]) -> tuple[Step, ...]:
    """``//T[p]`` as ``descendant::T[p]`` where that is the same (XPath 1.0 2.5 note: not when
    ``p`` is positional), so a name test walks the tree once instead of listing every node's
    children."""
    out: list[Step] = []
    for step in steps:
        if (out and out[-1] == _ANY_DESCENDANT_OR_SELF and step.axis == "child" and step.test not in _TYPE_TESTS
                and not any(_positional(p) for p in step.predicates)):
            out[-1] = Step("descendant", step.test, step.predicates)
        else:
            out.append(step)
    return tuple(out)


def _positional(expr: Expr) -> bool:
    """Whether a predicate's outcome can depend on the proximity position (XPath 1.0 2.4)."""
    if isinstance(expr, Constant):
        return isinstance(expr.value, float)
    if isinstance(expr, Negate):
        return True
    if isinstance(expr, Binary):
        return expr.op in _ARITHMETIC or _positional_call(expr.left) or _positional_call(expr.right)
    if isinstance(expr, Call):
        return expr.name in _NUMBER_FUNCTIONS or _positional_call(expr)
    return _positional_call(expr)


def _positional_call(expr: Expr) -> bool:
    """Whether ``expr`` calls position() or last() in the predicate's own context."""
    if isinstance(expr, Call):
        return expr.name in ("position", "last") or any(_positional_call(a) for a in expr.args)
    if isinstance(expr, Binary):
        return _positional_call(expr.left) or _positional_call(expr.right)
    if isinstance(expr, Negate):
        return _positional_call(expr.operand)
    if isinstance(expr, Filter):
        return _positional_call(expr.primary)
    if isinstance(expr, Path) and expr.start is not None:
        return _positional_call(expr.start)
    return False


def _arity(low: int, high: int) -> str:
    if high < 0:
        return f"at least {low} arguments"
    return f"{low} argument{'s' if low != 1 else ''}" if low == high else f"{low} to {high} arguments"


# ---------------------------------------------------------------------------------------------
# Evaluation.

@dataclass(slots=True)
class _Context:
    node: Node
    position: int
    size: int


@dataclass(slots=True)
class _Budget:
    left: int
    deadline: float
    since_clock: int = 0

    def spend(self, units: int) -> None:
        self.left -= units
        self.since_clock += units
        if self.left < 0:
            raise XPathTooCostly("XPath: the filter needs more work than allowed; narrow it")
        if self.since_clock >= 1024:
            self.since_clock = 0
            if time.monotonic() > self.deadline:
                raise XPathTooCostly("XPath: the filter took longer than allowed; narrow it")


class _Evaluator:
    def __init__(self, document: Document, budget: _Budget) -> None:
        self.document = document
        self.budget = budget

    def evaluate(self, expr: Expr, ctx: _Context) -> Value:
        self.budget.spend(1)
        if isinstance(expr, Constant):
            return expr.value
        if isinstance(expr, Path):
            return self.path(expr, ctx)
        if isinstance(expr, Filter):
            nodes = self.node_set(self.evaluate(expr.primary, ctx), "a predicate")
            for predicate in expr.predicates:
                nodes = self.filter(nodes, predicate)
            return nodes
        if isinstance(expr, Call):
            return FUNCTIONS[expr.name][1](self, ctx, expr.args)
        if isinstance(expr, Negate):
            return -self.number(self.evaluate(expr.operand, ctx))
        return self.binary(expr, ctx)

    # -- paths ---------------------------------------------------------------------------------

    def path(self, path: Path, ctx: _Context) -> list[Node]:
        if path.start is not None:
            nodes = self.node_set(self.evaluate(path.start, ctx), "a path")
        else:
            nodes = [ROOT] if path.absolute else [ctx.node]
        for step in path.steps:
            if len(nodes) == 1:  # one context: the axis gives each node once, in axis order
                nodes = self.step(step, nodes[0])
                if step.axis in _REVERSE_AXES:
                    nodes.reverse()
                continue
            seen: set[Any] = set()
            merged: list[Node] = []
            for node in nodes:
                for n in self.step(step, node):
                    if n not in seen:
                        seen.add(n)
                        merged.append(n)
            self.budget.spend(len(merged))
            nodes = self.in_order(merged)
        return nodes

    def step(self, step: Step, node: Node) -> list[Node]:
        selected = self.select(step, node)
        for predicate in step.predicates:
            selected = self.filter(selected, predicate)
        return selected

    def in_order(self, nodes: list[Node]) -> list[Node]:
        if len(nodes) > 1:
            nodes.sort(key=self.document.key)
        return nodes

    def filter(self, nodes: list[Node], predicate: Expr) -> list[Node]:
        """Proximity positions follow ``nodes`` as given (axis order, XPath 1.0 2.4)."""
        size = len(nodes)
        self.budget.spend(1 + size)
        # The forms nearly every real filter uses, answered without evaluating per node.
        if isinstance(predicate, Constant) and isinstance(predicate.value, float):
            wanted = predicate.value
            return [nodes[int(wanted) - 1]] if wanted.is_integer() and 1 <= wanted <= size else []
        if isinstance(predicate, Call) and predicate.name == "last":
            return nodes[-1:]
        attribute_test = _attribute_equals(predicate)
        if attribute_test is not None:
            name, literal = attribute_test
            if isinstance(literal, str):
                return [n for n in nodes if isinstance(n, etree._Element) and n.get(name) == literal]
            return [n for n in nodes if isinstance(n, etree._Element) and string_number(n.get(name) or "") == literal]
        kept = []
        for position, node in enumerate(nodes, 1):
            result = self.evaluate(predicate, _Context(node, position, size))
            if isinstance(result, float):
                if result == position:
                    kept.append(node)
            elif self.boolean(result):
                kept.append(node)
        return kept

    def select(self, step: Step, node: Node) -> list[Node]:
        """The nodes of ``step``'s axis from ``node`` that pass its node test, in axis order."""
        if isinstance(node, Root) and step.axis in _ELEMENT_WALKS and step.test not in _TYPE_TESTS:
            # The document node's only child is NativeDicomModel: walk from there.
            top = self.document.root
            own = [top] if self.matches(top, step) else []
            return own if step.axis == "child" else own + self.select(step, top)
        if isinstance(node, etree._Element) and step.test not in _TYPE_TESTS and step.axis in _ELEMENT_WALKS:
            # A name test on a downward axis: lxml walks the tree in C, about 16 times faster
            # than a visit here, so a walked node costs 1/16 unit and a selected one a whole unit.
            tag = etree.Element if step.test == "*" else step.test
            if step.axis == "child":
                self.budget.spend(1 + len(node) // 16)
                found: list[Node] = list(node.iterchildren(tag))
            else:
                self.budget.spend(1 + self.document.subtree_size(node) // 16)
                found = list(node.iter(tag))
                if found and found[0] is node:
                    del found[0]
            self.budget.spend(len(found))
            return found
        if step.axis == "attribute" and isinstance(node, etree._Element) and not step.test.endswith("*"):
            self.budget.spend(1)
            value = node.get(step.test)
            return [] if value is None else [Attribute(node, list(node.attrib).index(step.test), step.test, value)]
        found = list(self._axis(step.axis, node))
        self.budget.spend(len(found) + 1)
        return [n for n in found if self.matches(n, step)]

    def _axis(self, axis: str, node: Node) -> Iterator[Node]:
        if axis == "self":
            yield node
        elif axis == "child":
            yield from _children(self.document, node)
        elif axis == "attribute":
            if isinstance(node, etree._Element):
                for i, (name, value) in enumerate(node.attrib.items()):
                    yield Attribute(node, i, name, value)
        elif axis in ("descendant", "descendant-or-self"):
            if axis == "descendant-or-self":
                yield node
            yield from self.descendants(node)
        elif axis in ("parent", "ancestor", "ancestor-or-self"):
            if axis == "ancestor-or-self":
                yield node
            current = _parent(self.document, node)
            while current is not None:
                yield current
                if axis == "parent":
                    return
                current = _parent(self.document, current)
        elif isinstance(node, etree._Element) and node is not self.document.root:
            siblings = node.itersiblings(preceding=axis == "preceding-sibling")
            yield from (s for s in siblings if isinstance(s.tag, str))

    def descendants(self, node: Node) -> Iterator[Node]:
        if isinstance(node, Root):
            yield from _subtree(self.document.root)
        elif isinstance(node, etree._Element):
            nodes = _subtree(node)
            next(nodes)  # the element itself
            yield from nodes

    @staticmethod
    def matches(node: Node, step: Step) -> bool:
        test = step.test
        if test == "node()":
            return True
        if test == "text()":
            return isinstance(node, Text)
        if step.axis == "attribute":
            return isinstance(node, Attribute) and (test == "*" or node.name == test or (
                test.endswith("}*") and node.name.startswith(test[:-1])))
        if not isinstance(node, etree._Element):
            return False
        return test == "*" or node.tag == test or (test.endswith("}*") and node.tag.startswith(test[:-1]))

    # -- conversions (XPath 1.0 4.2-4.4) -------------------------------------------------------

    def node_set(self, value: Value, where: str) -> list[Node]:
        if not isinstance(value, list):
            raise InvalidXPath(f"XPath: {where} needs a node-set, not a {_type_name(value)}")
        return value

    def string_value(self, node: Node) -> str:
        if isinstance(node, Attribute):
            return node.value
        if isinstance(node, Text):
            return node.owner.text or ""
        element = self.document.root if isinstance(node, Root) else node
        assert isinstance(element, etree._Element)
        self.budget.spend(self.document.subtree_size(element))
        return "".join(element.itertext())

    def string(self, value: Value) -> str:
        if isinstance(value, list):
            return self.string_value(value[0]) if value else ""
        return scalar_text(value)

    def number(self, value: Value) -> float:
        if isinstance(value, bool):
            return 1.0 if value else 0.0
        if isinstance(value, float):
            return value
        return string_number(self.string(value))

    @staticmethod
    def boolean(value: Value) -> bool:
        if isinstance(value, float):
            return not (value == 0 or math.isnan(value))
        return bool(value)

    # -- operators (XPath 1.0 3.3-3.5) ---------------------------------------------------------

    def binary(self, expr: Binary, ctx: _Context) -> Value:
        op = expr.op
        if op == "or":
            return self.boolean(self.evaluate(expr.left, ctx)) or self.boolean(self.evaluate(expr.right, ctx))
        if op == "and":
            return self.boolean(self.evaluate(expr.left, ctx)) and self.boolean(self.evaluate(expr.right, ctx))
        left, right = self.evaluate(expr.left, ctx), self.evaluate(expr.right, ctx)
        if op == "|":
            a, b = self.node_set(left, "'|'"), self.node_set(right, "'|'")
            self.budget.spend(len(a) + len(b))
            return self.in_order(list(dict.fromkeys(a + b)))
        if op in ("=", "!=", "<", "<=", ">", ">="):
            return self.compare(op, left, right)
        x, y = self.number(left), self.number(right)
        return _ARITHMETIC[op](x, y)

    def compare(self, op: str, left: Value, right: Value) -> bool:
        """XPath 1.0 3.4, each node-set side read once (no pairwise loop)."""
        if isinstance(left, list) and isinstance(right, list):
            a = {self.string_value(n) for n in left}
            b = {self.string_value(n) for n in right}
            if op == "=":
                return not a.isdisjoint(b)
            if op == "!=":
                return bool(a and b) and len(a | b) > 1
            xs = [string_number(s) for s in a]
            ys = [string_number(s) for s in b]
            return any(_RELATIONS[op](x, y) for x in _extremes(xs) for y in _extremes(ys))
        if isinstance(right, list):
            return self.compare(_MIRRORED[op], right, left)
        if isinstance(left, list):
            if isinstance(right, bool):
                return _RELATIONS[op](float(bool(left)), float(right)) if op in _ORDERING else (
                    (bool(left) == right) == (op == "="))
            strings = [self.string_value(n) for n in left]
            if isinstance(right, float) or op in _ORDERING:
                target = self.number(right)
                return any(_RELATIONS[op](string_number(s), target) for s in strings)
            return any(_RELATIONS[op](s, right) for s in strings)
        if op in _ORDERING:
            return _RELATIONS[op](self.number(left), self.number(right))
        if isinstance(left, bool) or isinstance(right, bool):
            return _RELATIONS[op](self.boolean(left), self.boolean(right))
        if isinstance(left, float) or isinstance(right, float):
            return _RELATIONS[op](self.number(left), self.number(right))
        return _RELATIONS[op](left, right)

    def made(self, text: str) -> str:
        self.budget.spend(1 + len(text) // _CHARS_PER_UNIT)
        return text


def _extremes(numbers: list[float]) -> list[float]:
    real = [x for x in numbers if not math.isnan(x)]
    return [min(real), max(real)] if real else []


def _children(document: Document, node: Node) -> Iterator[Node]:
    if isinstance(node, Root):
        yield document.root
    elif isinstance(node, etree._Element):
        yield from _own_text(node)
        yield from (c for c in node if isinstance(c.tag, str))


def _subtree(element: etree._Element) -> Iterator[Node]:
    """``element``, then its descendants, in document order."""
    for e in element.iter(etree.Element):
        yield e
        yield from _own_text(e)


def _own_text(element: etree._Element) -> Iterator[Node]:
    if element.text:
        yield Text(element)


def _parent(document: Document, node: Node) -> Node | None:
    if isinstance(node, Root):
        return None
    if isinstance(node, (Attribute, Text)):
        return node.owner
    if node is document.root:
        return ROOT
    return node.getparent()


def _type_name(value: Value) -> str:
    return {bool: "boolean", float: "number", str: "string"}.get(type(value), "node-set")


_NUMBER_SYNTAX = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)")


def string_number(text: str) -> float:
    """XPath 1.0 4.4 number(): optional whitespace, an optional minus, digits; NaN otherwise."""
    text = text.strip(" \t\r\n")
    return float(text) if _NUMBER_SYNTAX.fullmatch(text) else math.nan


def scalar_text(value: str | float | bool) -> str:
    """XPath 1.0 4.2 string() of a string, number or boolean."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return number_text(value)
    return value


def number_text(x: float) -> str:
    """XPath 1.0 4.2 string() of a number: no exponent, no trailing '.0'."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == int(x):
        return str(int(x))
    return format(Decimal(repr(x)), "f")


def _div(x: float, y: float) -> float:
    if y == 0:
        if x == 0 or math.isnan(x):
            return math.nan
        return math.copysign(math.inf, x) * math.copysign(1.0, y)
    return x / y


def _mod(x: float, y: float) -> float:
    if y == 0 or math.isinf(x) or math.isnan(x) or math.isnan(y):
        return math.nan
    return math.fmod(x, y)


_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": lambda x, y: x + y, "-": lambda x, y: x - y, "*op": lambda x, y: x * y, "div": _div, "mod": _mod,
}
_RELATIONS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda x, y: x == y, "!=": lambda x, y: x != y, "<": lambda x, y: x < y, "<=": lambda x, y: x <= y,
    ">": lambda x, y: x > y, ">=": lambda x, y: x >= y,
}
_MIRRORED = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_ORDERING = frozenset(("<", "<=", ">", ">="))


# ---------------------------------------------------------------------------------------------
# The core function library offered (XPath 1.0 4.1-4.4).

Args = Sequence[Expr]
_Function = Callable[[_Evaluator, _Context, Args], Value]


def _string_arg(ev: _Evaluator, ctx: _Context, args: Args, i: int = 0) -> str:
    if len(args) > i:
        return ev.string(ev.evaluate(args[i], ctx))
    return ev.string([ctx.node])


def _nodes_arg(ev: _Evaluator, ctx: _Context, args: Args, name: str) -> list[Node]:
    if not args:
        return [ctx.node]
    return ev.node_set(ev.evaluate(args[0], ctx), f"{name}()")


def _local_name(ev: _Evaluator, ctx: _Context, args: Args) -> str:
    nodes = _nodes_arg(ev, ctx, args, "local-name")
    node = nodes[0] if nodes else None
    if isinstance(node, etree._Element):
        return etree.QName(node).localname
    if isinstance(node, Attribute):
        return etree.QName(node.name).localname
    return ""


def _name(ev: _Evaluator, ctx: _Context, args: Args) -> str:
    nodes = _nodes_arg(ev, ctx, args, "name")
    node = nodes[0] if nodes else None
    if isinstance(node, etree._Element):
        return f"{node.prefix}:{etree.QName(node).localname}" if node.prefix else etree.QName(node).localname
    if isinstance(node, Attribute):
        return f"xml:{etree.QName(node.name).localname}" if node.name.startswith(f"{{{XML_NAMESPACE}}}") else node.name
    return ""


def _substring(ev: _Evaluator, ctx: _Context, args: Args) -> str:
    text = _string_arg(ev, ctx, args)
    start = _round(ev.number(ev.evaluate(args[1], ctx)))
    end = start + _round(ev.number(ev.evaluate(args[2], ctx))) if len(args) > 2 else math.inf
    # XPath 1.0 4.2: characters at positions p (from 1) with start <= p < end.
    if math.isnan(start) or math.isnan(end):
        return ""
    first = max(start, 1.0)
    if end <= first:
        return ""
    return ev.made(text[int(first) - 1:] if math.isinf(end) else text[int(first) - 1:int(end) - 1])


def _before(ev: _Evaluator, ctx: _Context, args: Args) -> str:
    text, sep = _string_arg(ev, ctx, args), _string_arg(ev, ctx, args, 1)
    return text.partition(sep)[0] if sep in text else ""


def _after(ev: _Evaluator, ctx: _Context, args: Args) -> str:
    text, sep = _string_arg(ev, ctx, args), _string_arg(ev, ctx, args, 1)
    return text.partition(sep)[2] if sep in text else ""


def _translate(ev: _Evaluator, ctx: _Context, args: Args) -> str:
    text, source, target = (_string_arg(ev, ctx, args, i) for i in range(3))
    table: dict[int, int | None] = {}
    for i, char in enumerate(source):
        table.setdefault(ord(char), ord(target[i]) if i < len(target) else None)
    return ev.made(text.translate(table))


_XML_SPACE = re.compile(r"[ \t\r\n]+")


def _concat(ev: _Evaluator, ctx: _Context, args: Args) -> str:
    return ev.made("".join(_string_arg(ev, ctx, args, i) for i in range(len(args))))


def _normalized(text: str) -> str:
    return " ".join(_XML_SPACE.split(text.strip(" \t\r\n")))


def _integral(function: Callable[[float], int], x: float) -> float:
    return float(function(x)) if math.isfinite(x) else x


def _round(x: float) -> float:
    if math.isnan(x) or math.isinf(x):
        return x
    return float(math.floor(x + 0.5))


def _sum(ev: _Evaluator, ctx: _Context, args: Args) -> float:
    nodes = ev.node_set(ev.evaluate(args[0], ctx), "sum()")
    return math.fsum(string_number(ev.string_value(n)) for n in nodes)


FUNCTIONS: dict[str, tuple[tuple[int, int], _Function]] = {
    # (least, most arguments; -1: no upper bound), implementation
    "last": ((0, 0), lambda ev, ctx, args: float(ctx.size)),
    "position": ((0, 0), lambda ev, ctx, args: float(ctx.position)),
    "count": ((1, 1), lambda ev, ctx, args: float(len(ev.node_set(ev.evaluate(args[0], ctx), "count()")))),
    "local-name": ((0, 1), _local_name),
    "name": ((0, 1), _name),
    "string": ((0, 1), _string_arg),
    "concat": ((2, -1), _concat),
    "starts-with": ((2, 2), lambda ev, ctx, args: _string_arg(ev, ctx, args).startswith(_string_arg(ev, ctx, args, 1))),
    "contains": ((2, 2), lambda ev, ctx, args: _string_arg(ev, ctx, args, 1) in _string_arg(ev, ctx, args)),
    "substring-before": ((2, 2), _before),
    "substring-after": ((2, 2), _after),
    "substring": ((2, 3), _substring),
    "string-length": ((0, 1), lambda ev, ctx, args: float(len(_string_arg(ev, ctx, args)))),
    "normalize-space": ((0, 1), lambda ev, ctx, args: ev.made(_normalized(_string_arg(ev, ctx, args)))),
    "translate": ((3, 3), _translate),
    "boolean": ((1, 1), lambda ev, ctx, args: ev.boolean(ev.evaluate(args[0], ctx))),
    "not": ((1, 1), lambda ev, ctx, args: not ev.boolean(ev.evaluate(args[0], ctx))),
    "true": ((0, 0), lambda ev, ctx, args: True),
    "false": ((0, 0), lambda ev, ctx, args: False),
    "number": ((0, 1), lambda ev, ctx, args: ev.number(ev.evaluate(args[0], ctx)) if args else ev.number([ctx.node])),
    "sum": ((1, 1), _sum),
    "floor": ((1, 1), lambda ev, ctx, args: _integral(math.floor, ev.number(ev.evaluate(args[0], ctx)))),
    "ceiling": ((1, 1), lambda ev, ctx, args: _integral(math.ceil, ev.number(ev.evaluate(args[0], ctx)))),
    "round": ((1, 1), lambda ev, ctx, args: _round(ev.number(ev.evaluate(args[0], ctx)))),
}


# ---------------------------------------------------------------------------------------------
# The interface.

@dataclass(frozen=True)
class XPathFilter:
    """A client XPath, checked against the sandbox's grammar; evaluate it on any number of documents."""

    expression: str
    tree: Expr

    def evaluate(
        self, document: Document, *, work_limit: int = WORK_LIMIT, time_limit_s: float = TIME_LIMIT_S
    ) -> Value:
        """The XPath 1.0 value; XPathTooCostly when it needs more work, time or nodes than allowed."""
        budget = _Budget(work_limit, time.monotonic() + time_limit_s)
        result = _Evaluator(document, budget).evaluate(self.tree, _Context(ROOT, 1, 1))
        if isinstance(result, list) and len(result) > MAX_RESULT_NODES:
            raise XPathTooCostly(f"XPath: the filter selects {len(result)} nodes, more than {MAX_RESULT_NODES}")
        return result

    def to_text(self, document: Document, result: Value) -> str:
        """What an XPathResponse carries for ``result`` (see the module docstring)."""
        if not isinstance(result, list):
            return scalar_text(result)
        pieces: Iterable[str]
        if all(isinstance(n, (etree._Element, Root)) for n in result):
            pieces = (etree.tostring(document.root if isinstance(n, Root) else n, encoding="unicode",
                                     with_tail=False) for n in result)
            separator = ""
        else:
            # The nodes were selected within the budget; reading their text is bounded by MAX_RESULT_CHARS.
            evaluator = _Evaluator(document, _Budget(sys.maxsize, math.inf))
            pieces = (evaluator.string_value(n) for n in result)
            separator = "\\"
        out: list[str] = []
        size = 0
        for piece in pieces:
            size += len(piece) + len(separator)
            if size > MAX_RESULT_CHARS:
                raise XPathTooCostly(f"XPath: the filter's result exceeds {MAX_RESULT_CHARS} characters")
            out.append(piece)
        return separator.join(out)


def compile_filter(expression: str, namespaces: Mapping[str, str] | None = None) -> XPathFilter:
    """Check ``expression`` against the sandbox's grammar and bounds; ``namespaces`` are the
    prefixes the client has in scope where it wrote the expression."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise InvalidXPath(f"XPath: longer than {MAX_EXPRESSION_CHARS} characters")
    if not expression.strip():
        raise InvalidXPath("XPath: the expression is empty")
    tokens = tokenize(expression)
    parser = _Parser(tokens, namespaces or {})
    tree = parser.expression()
    leftover = parser.peek()
    if leftover is not None:
        raise InvalidXPath(f"XPath: unexpected {leftover.text!r} at {leftover.at + 1}")
    return XPathFilter(expression, tree)
