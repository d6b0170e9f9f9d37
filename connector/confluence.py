"""Confluence pages that hold Jira postmortems: one REST read, and storage format -> text.

The `jira` library does not cover Confluence, so this is plain `requests` with the Jira
credentials (Cloud: email + API token as basic auth; Data Center: a PAT as a bearer token).

`storage_to_text` turns Confluence's storage format (XHTML with `ac:`/`ri:` elements) into
markdown-ish text that `nlp.text.parse(..., "markdown")` reads: headings become `#`, lists `- `,
task lists `- [ ]`/`- [x]`, tables `| a | b |` rows under a header separator, code macros and
`<pre>` fenced code (so the analyser skips them), inline `<code>` backticks, links their text
(`[text](url)` when the URL differs, so action items keep their tracking link), `@` mentions.

What is lost: inline formatting (bold, colour; a paragraph wholly in bold keeps `**…**`, it
stands in for a heading), images and attachments, emoticons, template
placeholder text, macro parameters (except a `jira` macro's issue key and a `status` macro's
title), page layout, and markdown-significant characters in prose are not escaped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html import escape
from html.parser import HTMLParser
from urllib.parse import parse_qs, unquote_plus, urlsplit

import requests

from connector.base import NotFound, OutsideScope, TrackerError

# --------------------------------------------------------------------------- HTTP errors


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds: either a number or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def http_error(status: int | None, what: str, detail: str = "", headers=None) -> TrackerError:
    """Map an HTTP failure to the worker's error kinds (shared by the Jira connector).

    5xx and 429 are worth retrying; 404 is NotFound; 401/403/other 4xx need a human.
    `what` names the call and the issue or page; it must never contain credentials.
    """
    message = f"{what}: HTTP {status}" + (f" {detail}" if detail else "")
    if status == 404:
        return NotFound(message)
    if status == 429:
        retry = retry_after_seconds((headers or {}).get("Retry-After"))
        return TrackerError(message, transient=True, retry_after=retry)
    if status is not None and status >= 500:
        retry = retry_after_seconds((headers or {}).get("Retry-After"))
        return TrackerError(message, transient=True, retry_after=retry)
    return TrackerError(message, transient=False)


# --------------------------------------------------------------------------- page URLs

_SPACES_PAGE = re.compile(r"/spaces/([^/]+)/pages/(?:edit-v2/|edit/)?(\d+)(?:[/?#]|$)")
_DISPLAY_PAGE = re.compile(r"/display/([^/]+)/([^/?#]+)")


@dataclass(frozen=True)
class PageTarget:
    """Where a Confluence URL points: a page id (and the space the URL names, if any), or a
    space key + title (`/display/` URLs)."""

    page_id: str = ""
    space: str = ""
    title: str = ""


def page_target(url: str, confluence_url: str, global_id: str = "") -> PageTarget | None:
    """The page a URL names, if it is a page on the configured Confluence (same host).

    Other hosts are not readable with these credentials, so they are not Confluence here.
    `global_id` is a Jira remote link's `globalId` ("appId=…&pageId=123"), used when the URL
    itself carries no id.
    """
    parts, base = urlsplit(url), urlsplit(confluence_url)
    if not parts.netloc or parts.netloc.lower() != base.netloc.lower():
        return None
    if m := _SPACES_PAGE.search(parts.path):
        # The space a URL names lets a page be refused without a request; the page's own
        # answer is what decides when it is read (an id may be in any space).
        return PageTarget(page_id=m.group(2), space=unquote_plus(m.group(1)))
    if parts.path.endswith("/pages/viewpage.action"):
        ids = parse_qs(parts.query).get("pageId")
        if ids and ids[0].isdigit():
            return PageTarget(page_id=ids[0])
    if m := _DISPLAY_PAGE.search(parts.path):
        return PageTarget(space=unquote_plus(m.group(1)), title=unquote_plus(m.group(2)))
    ids = parse_qs(global_id).get("pageId")
    if ids and ids[0].isdigit():
        return PageTarget(page_id=ids[0])
    return None


# --------------------------------------------------------------------------- REST client

# The space comes with the page so that its place is known before its body is used.
_EXPAND = "body.storage,version,space"


@dataclass(frozen=True)
class Page:
    id: str
    title: str
    storage: str
    url: str
    updated_at: datetime | None = None
    space: str = ""


class ConfluenceClient:
    """Reads pages through Confluence's REST API (`/rest/api/content`)."""

    def __init__(
        self,
        base_url: str,
        *,
        email: str | None = None,
        token: str | None = None,
        pat: str | None = None,
        timeout: float = 15,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        self._session.headers["Accept"] = "application/json"
        if pat:
            self._session.headers["Authorization"] = f"Bearer {pat}"
        elif email and token:
            self._session.auth = (email, token)
        self._users: dict[tuple[str, str], str] = {}

    def page(self, page_id: str, spaces: Collection[str] | None = None) -> Page:
        """A page by id. With `spaces`, a page in any other space is refused (OutsideScope)
        before anything of it is returned."""
        if not page_id.isascii() or not page_id.isdigit():
            # The id goes into the request path; only digits are an id.
            raise TrackerError(f"{page_id!r} is not a Confluence page id", transient=False)
        what = f"Confluence GET page {page_id}"
        data = self._get(f"/rest/api/content/{page_id}", {"expand": _EXPAND}, what)
        return self._page(data, spaces, f"Confluence page {page_id}")

    def page_by_title(
        self, space: str, title: str, spaces: Collection[str] | None = None
    ) -> Page:
        what = f"Confluence GET page {title!r} in space {space}"
        data = self._get(
            "/rest/api/content", {"spaceKey": space, "title": title, "expand": _EXPAND}, what
        )
        results = data.get("results") or []
        if not results:
            raise NotFound(f"{what}: no such page")
        return self._page(results[0], spaces, f"Confluence page {title!r}")

    def read(self, target: PageTarget, spaces: Collection[str] | None = None) -> Page:
        if target.page_id:
            return self.page(target.page_id, spaces)
        return self.page_by_title(target.space, target.title, spaces)

    def to_text(self, storage: str) -> str:
        """Storage format -> text, with @mentions resolved to display names where possible."""
        return storage_to_text(storage, user_name=self._user_name)

    def _user_name(self, attrs: dict[str, str]) -> str:
        # Cloud mentions carry only an account id and DC ones a user key; the name a reader
        # sees (and the roster matches) needs one lookup per person, cached per client.
        if name := attrs.get("ri:username"):
            return name
        for attr, param in (("ri:account-id", "accountId"), ("ri:userkey", "key")):
            if value := attrs.get(attr):
                key = (param, value)
                if key not in self._users:
                    self._users[key] = self._lookup_user(param, value) or value
                return self._users[key]
        return "user"

    def _lookup_user(self, param: str, value: str) -> str | None:
        try:
            data = self._get("/rest/api/user", {param: value}, "Confluence GET user")
        except TrackerError as exc:
            if exc.transient:
                raise
            return None  # unknown or hidden user: fall back to the id
        return data.get("displayName") or data.get("publicName") or data.get("username")

    def _page(self, data: dict, spaces: Collection[str] | None = None, what: str = "") -> Page:
        space = str((data.get("space") or {}).get("key") or "")
        # Checked on the page's own answer, before its body is used: an id or a URL does
        # not prove which space a page is in. No space in the answer: refused.
        if spaces is not None and space.upper() not in {s.upper() for s in spaces if s}:
            raise OutsideScope(what or "the Confluence page")
        links = data.get("_links") or {}
        base = links.get("base") or self.base_url
        url = f"{base}{links['webui']}" if links.get("webui") else ""
        version = data.get("version") or {}
        return Page(
            id=str(data.get("id", "")),
            title=data.get("title") or "",
            storage=((data.get("body") or {}).get("storage") or {}).get("value") or "",
            url=url,
            updated_at=parse_time(version.get("when")),
            space=space,
        )

    def _get(self, path: str, params: dict, what: str) -> dict:
        try:
            response = self._session.get(self.base_url + path, params=params, timeout=self.timeout)
        except requests.Timeout:
            raise TrackerError(f"{what}: timed out", transient=True) from None
        except requests.ConnectionError:
            raise TrackerError(f"{what}: connection failed", transient=True) from None
        except requests.RequestException as exc:
            raise TrackerError(f"{what}: {type(exc).__name__}", transient=False) from None
        if not response.ok:
            raise http_error(response.status_code, what, _error_text(response), response.headers)
        try:
            return response.json()
        except ValueError:
            raise TrackerError(f"{what}: response is not JSON", transient=False) from None


def _error_text(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return ""
    if isinstance(data, dict):
        return str(data.get("message") or "; ".join(data.get("errorMessages") or []))[:300]
    return ""


def parse_time(value: object) -> datetime | None:
    """An Atlassian timestamp ("2024-03-07T14:02:11.000+0000"), or None."""
    if not isinstance(value, str) or not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            pass
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


# --------------------------------------------------------------------------- storage -> text


@dataclass
class _Node:
    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[_Node | str] = field(default_factory=list)

    def child(self, tag: str) -> _Node | None:
        return next((c for c in self.children if isinstance(c, _Node) and c.tag == tag), None)

    def raw_text(self) -> str:
        """All text below, whitespace kept (code bodies)."""
        parts = []
        for c in self.children:
            if isinstance(c, str):
                parts.append(c)
            elif c.tag == "br":
                parts.append("\n")
            else:
                parts.append(c.raw_text())
        return "".join(parts)


_VOID = {"br", "hr", "img", "col", "input", "meta", "link", "wbr", "source", "area", "base"}
_CDATA = re.compile(r"<!\[CDATA\[(.*?)\]\]>", re.DOTALL)


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = _Node("root")
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = _Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(_Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        # Close up to the matching open element; a stray end tag closes nothing.
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


# Elements whose text never reaches the reader.
_DROP = {
    "ac:parameter", "ac:placeholder", "ac:image", "ac:emoticon", "ac:task-id", "ac:adf-fallback",
    "ac:adf-attribute", "style", "script", "img", "ri:attachment", "colgroup", "col",
}  # fmt: skip
_INLINE = {
    "a", "span", "strong", "b", "em", "i", "u", "s", "del", "ins", "sub", "sup", "code", "br",
    "time", "ac:link", "ri:user", "ac:inline-comment-marker", "font", "small", "big", "abbr",
    "cite", "q", "mark", "ac:plain-text-link-body", "ac:link-body", "ac:emoticon", "ac:image",
    "ac:placeholder", "img",
}  # fmt: skip
_BLOCK = {
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "table", "pre", "blockquote",
    "hr", "div", "section", "ac:task-list", "ac:layout", "ac:layout-section", "ac:layout-cell",
    "ac:rich-text-body", "ac:adf-extension", "ac:adf-node", "ac:adf-content", "tbody", "thead",
}  # fmt: skip
_CODE_MACROS = {"code", "noformat"}
_INLINE_MACROS = {"jira", "status", "anchor"}

UserName = Callable[[dict[str, str]], str]


def _default_user(attrs: dict[str, str]) -> str:
    return (
        attrs.get("ri:username") or attrs.get("ri:account-id") or attrs.get("ri:userkey") or "user"
    )


def storage_to_text(storage: str, *, user_name: UserName | None = None) -> str:
    """Confluence storage format -> markdown-ish text (see the module docstring)."""
    # CDATA handling in html.parser differs across Python versions; escaped text does not.
    source = _CDATA.sub(lambda m: escape(m.group(1), quote=False), storage)
    builder = _TreeBuilder()
    builder.feed(source)
    builder.close()
    blocks = _Renderer(user_name or _default_user).blocks(builder.root.children)
    return "\n\n".join(text for _, text in blocks) + ("\n" if blocks else "")


Block = tuple[str, str]  # (kind, markdown text): para | heading | list | code | table | ...


def _wholly_bold(node: _Node) -> bool:
    parts = [c for c in node.children if not (isinstance(c, str) and not c.strip())]
    return len(parts) == 1 and isinstance(parts[0], _Node) and parts[0].tag in ("strong", "b")


class _Renderer:
    def __init__(self, user_name: UserName) -> None:
        self.user_name = user_name

    # ---- block context

    def blocks(self, children: Iterable[_Node | str]) -> list[Block]:
        out: list[Block] = []
        run: list[_Node | str] = []
        for child in children:
            if isinstance(child, str) or not self._is_block(child):
                run.append(child)
                continue
            self._flush(run, out)
            out.extend(self.block(child))
        self._flush(run, out)
        return out

    def _is_block(self, node: _Node) -> bool:
        if node.tag == "ac:structured-macro":
            return _macro_name(node) not in _INLINE_MACROS
        if node.tag in _BLOCK:
            return True
        if node.tag in _INLINE or node.tag in _DROP:
            return False
        return any(isinstance(c, _Node) and self._is_block(c) for c in node.children)

    def _flush(self, run: list[_Node | str], out: list[Block]) -> None:
        text = self.inline(run)
        run.clear()
        if text:
            out.append(("para", text))

    def block(self, node: _Node) -> list[Block]:
        tag = node.tag
        if tag in _DROP:
            return []
        if re.fullmatch(r"h[1-6]", tag):
            text = self.inline(node.children).replace("\n", " ")
            return [("heading", f"{'#' * int(tag[1])} {text}")] if text else []
        if tag == "p":
            text = self.inline(node.children)
            if text and _wholly_bold(node):
                # A bold line standing in for a heading ("Next steps" in <strong>) keeps its
                # emphasis, so the action-item check still reads it as a label.
                text = f"**{text.strip()}**"
            return [("para", text)] if text else []
        if tag in ("ul", "ol"):
            items = [self._item(li, "- ") for li in _children(node, "li")]
            return [("list", "\n".join(i for i in items if i))] if any(items) else []
        if tag == "li":  # stray item outside a list
            return [("list", self._item(node, "- "))]
        if tag == "ac:task-list":
            return self._task_list(node)
        if tag == "table":
            return self._table(node)
        if tag == "pre":
            return [("code", _fence(node.raw_text(), ""))]
        if tag == "blockquote":
            inner = self.blocks(node.children)
            quoted = "\n>\n".join(_prefix(text, "> ") for _, text in inner)
            return [("quote", quoted)] if inner else []
        if tag == "hr":
            return [("hr", "---")]
        if tag == "ac:structured-macro":
            return self._macro_blocks(node)
        return self.blocks(node.children)

    def _item(self, node: _Node, marker: str) -> str:
        """One list item: its leading paragraphs on the marker line, the rest indented."""
        head: list[str] = []
        rest: list[str] = []
        for kind, text in self.blocks(node.children):
            if kind == "para" and not rest:
                head.append(text.replace("\n", " "))
            else:
                rest.append(_prefix(text, "  "))
        if not head and not rest:
            return marker.rstrip() if "[" in marker else ""
        return "\n".join([f"{marker}{' '.join(head)}".rstrip(), *rest])

    def _task_list(self, node: _Node) -> list[Block]:
        items = []
        for task in _children(node, "ac:task"):
            status = task.child("ac:task-status")
            done = status is not None and status.raw_text().strip().lower() == "complete"
            body = task.child("ac:task-body") or _Node("ac:task-body")
            items.append(self._item(body, "- [x] " if done else "- [ ] "))
        return [("list", "\n".join(items))] if items else []

    def _table(self, node: _Node) -> list[Block]:
        rows = [
            [self._cell(c) for c in row.children if isinstance(c, _Node) and c.tag in ("td", "th")]
            for row in _rows(node)
        ]
        rows = [r for r in rows if r]
        if not rows:
            return []
        width = max(len(r) for r in rows)
        rows = [r + [""] * (width - len(r)) for r in rows]
        lines = [_row(rows[0]), _row(["---"] * width), *(_row(r) for r in rows[1:])]
        return [("table", "\n".join(lines))]

    def _cell(self, node: _Node) -> str:
        # A table row is one line, so everything in a cell is flattened; code stays code.
        parts = []
        for kind, text in self.blocks(node.children):
            if kind == "code":
                body = "\n".join(text.split("\n")[1:-1])
                parts.append(_inline_code(" ".join(body.split())))
            else:
                parts.append(" ".join(text.split()))
        return " ".join(p for p in parts if p).replace("|", "\\|")

    def _macro_blocks(self, node: _Node) -> list[Block]:
        name = _macro_name(node)
        if name in _CODE_MACROS:
            body = node.child("ac:plain-text-body")
            text = body.raw_text() if body else ""
            return [("code", _fence(text, _macro_param(node, "language")))]
        body = node.child("ac:rich-text-body") or node.child("ac:adf-content")
        return self.blocks(body.children) if body else []

    # ---- inline context

    def inline(self, nodes: Iterable[_Node | str]) -> str:
        text = "".join(self._inline(n) for n in nodes)
        # Whitespace collapses as in HTML; "\n" comes only from <br/> and survives.
        lines = [" ".join(line.split()) for line in text.split("\n")]
        return "\n".join(line for line in lines if line)

    def _inline(self, node: _Node | str) -> str:
        if isinstance(node, str):
            return re.sub(r"\s+", " ", node)
        tag = node.tag
        if tag in _DROP:
            return ""
        if tag == "br":
            return "\n"
        if tag == "code":
            return _inline_code(" ".join(node.raw_text().split()))
        if tag == "time":
            return node.attrs.get("datetime", "") or self.inline(node.children)
        if tag == "ri:user":
            return "@" + self.user_name(node.attrs)
        if tag == "a":
            text = self.inline(node.children).replace("\n", " ")
            href = node.attrs.get("href", "")
            if href.startswith(("http://", "https://")) and text != href:
                return f"[{text}]({href})" if text else href
            return text or href
        if tag == "ac:link":
            return self._ac_link(node)
        if tag == "ac:structured-macro":
            return self._macro_inline(node)
        if tag in ("p", "li", "div", "tr", "td", "th") or re.fullmatch(r"h[1-6]", tag):
            # Block elements met inside inline content keep their words apart.
            return " " + "".join(self._inline(c) for c in node.children) + " "
        return "".join(self._inline(c) for c in node.children)

    def _ac_link(self, node: _Node) -> str:
        body = node.child("ac:plain-text-link-body") or node.child("ac:link-body")
        text = self.inline(body.children) if body else ""
        if text:
            return text
        for child in node.children:
            if not isinstance(child, _Node):
                continue
            if child.tag == "ri:user":
                return "@" + self.user_name(child.attrs)
            if child.tag in ("ri:page", "ri:blog-post"):
                return child.attrs.get("ri:content-title", "")
            if child.tag == "ri:attachment":
                return child.attrs.get("ri:filename", "")
            if child.tag == "ri:url":
                return child.attrs.get("ri:value", "")
            if child.tag == "ri:space":
                return child.attrs.get("ri:space-key", "")
        return ""

    def _macro_inline(self, node: _Node) -> str:
        name = _macro_name(node)
        if name == "jira":
            return _macro_param(node, "key")
        if name == "status":
            return _macro_param(node, "title")
        if name in _CODE_MACROS:
            body = node.child("ac:plain-text-body")
            return _inline_code(" ".join((body.raw_text() if body else "").split()))
        body = node.child("ac:rich-text-body")
        return " " + "".join(self._inline(c) for c in body.children) + " " if body else ""


def _children(node: _Node, tag: str) -> list[_Node]:
    return [c for c in node.children if isinstance(c, _Node) and c.tag == tag]


def _rows(table: _Node) -> list[_Node]:
    rows: list[_Node] = []
    for child in table.children:
        if isinstance(child, _Node):
            if child.tag == "tr":
                rows.append(child)
            elif child.tag in ("thead", "tbody", "tfoot"):
                rows.extend(_children(child, "tr"))
    return rows


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _macro_name(node: _Node) -> str:
    return node.attrs.get("ac:name", "").lower()


def _macro_param(node: _Node, name: str) -> str:
    for p in _children(node, "ac:parameter"):
        if p.attrs.get("ac:name") == name:
            return p.raw_text().strip()
    return ""


def _prefix(text: str, prefix: str) -> str:
    return "\n".join(
        (prefix + line).rstrip() if line else prefix.rstrip() for line in text.split("\n")
    )


def _fence(code: str, language: str) -> str:
    # A fence longer than any backtick run inside keeps the block closed where it should be.
    longest = max((len(m) for m in re.findall(r"`+", code)), default=0)
    fence = "`" * max(3, longest + 1)
    body = code.strip("\n")
    return f"{fence}{language}\n{body}\n{fence}"


def _inline_code(code: str) -> str:
    if not code.strip():
        return ""
    longest = max((len(m) for m in re.findall(r"`+", code)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if code.startswith("`") or code.endswith("`") else ""
    return f"{ticks}{pad}{code}{pad}{ticks}"
