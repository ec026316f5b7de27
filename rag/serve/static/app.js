// rag web app: a thin client of the /api endpoints of `rag serve` (rag/serve/web.py). Plain JS, no
// libraries, nothing loaded from anywhere but this server. Text from documents and answers is only
// ever put in the page as text nodes, never as HTML.
"use strict";

const STRINGS = {
  en: {
    title: "Ask your documents", tab_ask: "Ask", tab_search: "Search", tab_status: "Status",
    collection: "Collection", all_collections: "All collections", language: "Language",
    empty: "Ask a question about your documents. Click a source under the answer (or a [1] in it) to see the passage on its page.",
    placeholder: "Ask a question… (Enter sends, Shift+Enter for a new line)", think: "Think first",
    reset: "New conversation", send: "Ask", stop: "Stop", searched: "Searched for: {q}", thinking: "Thinking",
    refused: "Not found in your documents", closest: "Closest sources", sources: "Sources",
    not_cited: "not cited", attributed: "found by the citation check", ocr: "OCR {p}",
    attributed_title: "The model wrote no [n] for this source; rag's citation check found that it says what the answer says.",
    page_loc: "{name}, page {p}", stopped: "(stopped)",
    unsupported: "{n} of {m} sentences are not backed by any source (dotted underline).",
    unsupported_title: "No source says this: it may be the model's own words.",
    no_answer: "retrieval {ret} ms · no answer generated",
    meta: "first token {ttft} s in the browser · retrieval {ret} ms · {tok} tokens at {tps} tok/s",
    cut: "(stopped at the time limit)", max_tokens: "(stopped at the length limit)",
    search_placeholder: "Search your documents…", mode: "Mode", mode_hybrid: "hybrid",
    mode_vector: "meaning (vector)", mode_text: "exact words (text)", types: "Types", paths: "Paths",
    search: "Search", no_results: "Nothing found.", score: "score {s}",
    open_file: "Open the file", close: "Close (Esc)", page_of: "page {p}",
    boxes_text: "The highlighted boxes are the supporting passage, from the PDF's text layer.",
    boxes_ocr: "The highlighted boxes are the supporting passage, from OCR of this scanned page.",
    boxes_none: "The passage could not be located on the page image.",
    closest_text: "This source backs no sentence of the answer: boxed is its sentence closest to the question (PDF text layer).",
    closest_ocr: "This source backs no sentence of the answer: boxed is its sentence closest to the question (OCR).",
    no_page: "The page image is not available: {e}",
    index: "Index", location: "Location", documents: "Documents", chunks: "Chunks", models: "Models",
    embedder: "Embedder", llm: "Chat model", ocr_pages: "Pages read by OCR", failed: "Failed files",
    reason: "Reason", file: "File", skipped: "Skipped files", none: "none", no_index: "No index yet at {p}: run rag index FOLDER.",
    collections: "Collections", name: "Name", version: "Version",
    key_title: "This server needs its API key",
    key_hint: "It was given to rag serve with --api-key (or RAG_API_KEY). It is asked once, then kept in a cookie of this browser.",
    key_send: "Continue", key_wrong: "That key is not the server's.", error: "Error: {m}",
  },
  zh: {
    title: "问你的文档", tab_ask: "提问", tab_search: "搜索", tab_status: "状态",
    collection: "集合", all_collections: "全部集合", language: "语言",
    empty: "就你的文档提一个问题。点击回答下方的来源（或回答中的 [1]），即可在原页面上查看该段落。",
    placeholder: "输入问题…（回车发送，Shift+回车换行）", think: "先思考",
    reset: "新对话", send: "提问", stop: "停止", searched: "检索的问题：{q}", thinking: "思考过程",
    refused: "文档中没有找到答案", closest: "最接近的来源", sources: "来源",
    not_cited: "未引用", attributed: "由引用核对找到", ocr: "OCR {p}",
    attributed_title: "模型没有为这个来源写 [n]；rag 的引用核对发现它支持回答中的内容。",
    page_loc: "{name}，第 {p} 页", stopped: "（已停止）",
    unsupported: "{m} 句中有 {n} 句没有任何来源支持（虚线标出）。",
    unsupported_title: "没有来源这样说：可能是模型自己的话。",
    no_answer: "检索 {ret} 毫秒 · 未生成回答",
    meta: "浏览器中首个字 {ttft} 秒 · 检索 {ret} 毫秒 · {tok} 个词元，每秒 {tps} 个",
    cut: "（已到时间上限）", max_tokens: "（已到长度上限）",
    search_placeholder: "搜索你的文档…", mode: "方式", mode_hybrid: "混合",
    mode_vector: "语义（向量）", mode_text: "字面（全文）", types: "类型", paths: "路径",
    search: "搜索", no_results: "没有找到结果。", score: "得分 {s}",
    open_file: "打开文件", close: "关闭（Esc）", page_of: "第 {p} 页",
    boxes_text: "高亮框是支持回答的段落，来自 PDF 的文本层。",
    boxes_ocr: "高亮框是支持回答的段落，来自这一扫描页的 OCR。",
    boxes_none: "未能在页面图像上定位该段落。",
    closest_text: "这个来源不支持回答中的任何一句：框出的是其中与问题最接近的句子（PDF 文本层）。",
    closest_ocr: "这个来源不支持回答中的任何一句：框出的是其中与问题最接近的句子（OCR）。",
    no_page: "无法显示页面图像：{e}",
    index: "索引", location: "位置", documents: "文档", chunks: "文本块", models: "模型",
    embedder: "向量模型", llm: "对话模型", ocr_pages: "OCR 识别的页数", failed: "失败的文件",
    reason: "原因", file: "文件", skipped: "跳过的文件", none: "无", no_index: "{p} 还没有索引：请运行 rag index 文件夹。",
    collections: "集合", name: "名称", version: "版本",
    key_title: "此服务器需要 API 密钥",
    key_hint: "即启动 rag serve 时用 --api-key（或 RAG_API_KEY）设置的密钥。只需输入一次，之后保存在本浏览器的 Cookie 中。",
    key_send: "继续", key_wrong: "密钥不正确。", error: "出错：{m}",
  },
};

const $ = (id) => document.getElementById(id);
const state = { lang: "en", history: [], status: null, login: null, abort: null };

function pickLanguage() {
  const saved = localStorage.getItem("rag-lang");
  if (saved && STRINGS[saved]) return saved;
  const wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "en"];
  for (const tag of wanted) {
    const base = tag.toLowerCase().split("-")[0];
    if (STRINGS[base]) return base;
  }
  return "en";
}

function t(key, vars = {}) {
  const text = (STRINGS[state.lang] && STRINGS[state.lang][key]) || STRINGS.en[key] || key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : ""));
}

function applyLanguage(lang) {
  state.lang = lang;
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  $("lang").value = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of document.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  document.title = t("title") + " · rag";
  if (state.status) renderStatus(state.status);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

// -- the server --------------------------------------------------------------------------------------

async function api(path, options = {}) {
  const init = { credentials: "same-origin", ...options, headers: { ...(options.headers || {}) } };
  if (init.body && typeof init.body !== "string") {
    init.body = JSON.stringify(init.body);
    init.headers["Content-Type"] = "application/json";
  }
  let reply = await fetch(path, init);
  if (reply.status === 401) {
    await login();
    reply = await fetch(path, init);
  }
  if (!reply.ok) {
    let message = `${reply.status} ${reply.statusText}`;
    try { message = (await reply.json()).error.message || message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return reply;
}

// With --api-key: ask for the key once (however many requests got 401 meanwhile), then a cookie holds it.
function login() {
  if (state.login) return state.login;
  const dialog = $("login");
  state.login = new Promise((resolve) => {
    $("key-error").hidden = true;
    const submit = async (event) => {
      event.preventDefault();
      const reply = await fetch("/api/session", {
        method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ key: $("key").value }),
      });
      if (reply.ok) {
        $("login-form").removeEventListener("submit", submit);
        $("key").value = "";
        dialog.close();
        state.login = null;
        resolve();
      } else {
        $("key-error").textContent = t("key_wrong");
        $("key-error").hidden = false;
      }
    };
    $("login-form").addEventListener("submit", submit);
    dialog.showModal();
  });
  return state.login;
}

// Server-sent events from a POST: fetch's body, split at blank lines into (event, data) pairs.
async function* events(reply) {
  const reader = reply.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) yield [name, JSON.parse(data)];
    }
  }
}

// -- ask ---------------------------------------------------------------------------------------------

// Where a source is, in the interface's language: "notes.md › Keys", "report.pdf, page 3" / "第 3 页".
function where(source) {
  const name = source.path.split(/[\\/]/).pop();
  if (source.page !== null && source.page !== undefined) return t("page_loc", { name, p: source.page });
  return source.heading ? `${name} › ${source.heading.replaceAll(" > ", " › ")}` : name;
}

const MARKER = /\[(\d+(?:\s*,\s*\d+)*)\]/g;

// The answer's text with each [n] (and [1, 2]) a link to its source; the sentences in `unsupported`
// (text ranges) marked as backed by no source.
function renderAnswer(node, text, turn, unsupported = []) {
  node.replaceChildren();
  let at = 0;
  for (const [start, end] of [...unsupported, [text.length, text.length]]) {
    linked(node, text.slice(at, start), turn);
    if (end > start) {
      const span = el("span", { class: "unsupported", title: t("unsupported_title") });
      linked(span, text.slice(start, end), turn);
      node.append(span);
    }
    at = end;
  }
}

function linked(node, text, turn) {
  let last = 0;
  for (const match of text.matchAll(MARKER)) {
    node.append(text.slice(last, match.index));
    const numbers = match[1].split(",").map((n) => parseInt(n, 10));
    node.append("[");
    numbers.forEach((n, i) => {
      if (i) node.append(", ");
      node.append(el("a", { class: "cite", href: "#", "data-n": n, onclick: (e) => { e.preventDefault(); openCitation(turn, n); } }, String(n)));
    });
    node.append("]");
    last = match.index + match[0].length;
  }
  node.append(text.slice(last));
}

// The text ranges of the answer's sentences that no source backs, found in order in its text.
function unsupportedRanges(answer) {
  const ranges = [];
  let from = 0;
  for (const sentence of answer.sentences || []) {
    const start = answer.answer.indexOf(sentence.text, from);
    if (start < 0) continue;
    from = start + sentence.text.length;
    if (!sentence.supported) ranges.push([start, from]);
  }
  return ranges;
}

function sourceItem(turn, source, evidence) {
  const cited = source.cited;
  const quote = evidence ? evidence.snippet : source.best || source.snippet;
  const tags = [];
  if (source.ocr !== null && source.ocr !== undefined) tags.push(t("ocr", { p: Math.round(source.ocr * 100) + "%" }));
  if (turn.answer && !cited) tags.push(t("not_cited"));
  const tag = tags.length ? el("span", { class: "tag", text: tags.join(" · ") }) : null;
  const checker = evidence && evidence.added ? el("span", { class: "tag", title: t("attributed_title"), text: t("attributed") }) : null;
  return el("li", { class: cited ? "cited" : "uncited", "data-n": source.n },
    el("span", { class: "n", text: `[${source.n}]` }),
    el("a", { class: "loc", href: "#", onclick: (e) => { e.preventDefault(); openCitation(turn, source.n); } }, where(source)),
    tag, checker,
    el("span", { class: "quote", text: quote }));
}

function renderSources(turn) {
  const list = turn.nodes.sources;
  list.replaceChildren();
  const answer = turn.answer;
  const evidence = new Map((answer ? answer.evidence : []).map((e) => [e.n, e]));
  const sources = answer ? answer.sources : turn.sources;
  for (const source of sources) list.append(sourceItem(turn, source, evidence.get(source.n)));
  turn.nodes.sourcesTitle.textContent = answer && answer.refused ? t("closest") : t("sources");
  turn.nodes.sourcesTitle.hidden = sources.length === 0;
}

// Run `change`, keeping the conversation scrolled to its end if it was there (the user reading along).
function following(change) {
  const box = $("conversation");
  const atEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  change();
  if (atEnd) box.scrollTop = box.scrollHeight;
}

function newTurn(question) {
  const nodes = {};
  nodes.root = el("article", { class: "turn", "data-state": "asking" },
    el("p", { class: "q", text: question }),
    nodes.searched = el("p", { class: "searched", hidden: true }),
    nodes.badge = el("span", { class: "badge", hidden: true }),
    nodes.thinking = el("details", { class: "thinking", hidden: true }, el("summary", { text: t("thinking") }), el("pre")),
    nodes.answer = el("div", { class: "answer streaming" }),
    nodes.sourcesTitle = el("h2", { hidden: true }),
    nodes.sources = el("ol", { class: "sources" }),
    nodes.meta = el("p", { class: "meta" }));
  $("conversation").append(nodes.root);
  $("empty").hidden = true;
  nodes.root.scrollIntoView({ block: "start" });
  return { question, nodes, text: "", thinking: "", sources: [], answer: null };
}

async function ask(question) {
  const turn = newTurn(question);
  const started = performance.now();
  let firstToken = null;
  const body = { question, history: state.history, thinking: $("think").checked };
  const collection = $("collection").value;
  if (collection) body.collection = collection;
  const abort = new AbortController();
  setBusy(abort);
  try {
    const reply = await api("/api/ask", { method: "POST", body, signal: abort.signal });
    for await (const [name, data] of events(reply)) {
      following(() => {
        if (name === "question" && data.rewritten) {
          turn.nodes.searched.textContent = t("searched", { q: data.searched });
          turn.nodes.searched.hidden = false;
        } else if (name === "sources") {
          turn.sources = data.sources;
          renderSources(turn);
        } else if (name === "thinking") {
          turn.thinking += data.text;
          turn.nodes.thinking.hidden = false;
          turn.nodes.thinking.querySelector("pre").textContent = turn.thinking;
        } else if (name === "token") {
          if (firstToken === null) {
            firstToken = performance.now() - started;
            turn.nodes.root.dataset.ttftMs = String(Math.round(firstToken));
          }
          turn.text += data.text;
          renderAnswer(turn.nodes.answer, turn.text, turn);
        } else if (name === "done") {
          finish(turn, data.answer, data.cut, firstToken);
        } else if (name === "error") {
          throw new Error(data.message);
        }
      });
    }
  } catch (error) {
    turn.nodes.answer.classList.remove("streaming");
    if (error.name === "AbortError") {  // Stop: the server stops generating when the request goes away
      turn.nodes.root.dataset.state = "stopped";
      turn.nodes.meta.textContent = t("stopped");
    } else {
      turn.nodes.root.dataset.state = "error";
      turn.nodes.answer.append(el("p", { class: "error", text: t("error", { m: error.message }) }));
    }
  } finally {
    setBusy(null);
  }
}

function finish(turn, answer, cut, firstToken) {
  turn.answer = answer;
  const root = turn.nodes.root;
  root.dataset.state = "done";
  root.classList.toggle("refused", answer.refused);
  turn.nodes.answer.classList.remove("streaming");
  const unsupported = answer.refused ? [] : unsupportedRanges(answer);
  renderAnswer(turn.nodes.answer, answer.answer, turn, unsupported);  // what streamed is what is returned
  if (answer.refused) {
    turn.nodes.badge.textContent = t("refused");
    turn.nodes.badge.hidden = false;
  }
  renderSources(turn);
  const tm = answer.timings;
  let meta;
  if (tm.generated_tokens === 0) {
    meta = t("no_answer", { ret: Math.round(tm.retrieval_ms) });
  } else {
    const ttft = firstToken === null ? "–" : (firstToken / 1000).toFixed(1);
    meta = t("meta", { ttft, ret: Math.round(tm.retrieval_ms), tok: tm.generated_tokens, tps: tm.tokens_per_s.toFixed(1) });
  }
  if (cut) meta += " " + t("cut");
  else if (answer.stopped_reason === "max_tokens") meta += " " + t("max_tokens");
  if (unsupported.length) meta = t("unsupported", { n: unsupported.length, m: answer.sentences.length }) + " · " + meta;
  turn.nodes.meta.textContent = meta;
  state.history.push([turn.question, answer.answer]);
}

// While an answer streams, the Ask button is a Stop button; the question box stays open for the next one.
function setBusy(abort) {
  state.abort = abort;
  const send = $("send");
  send.textContent = t(abort ? "stop" : "send");
  send.classList.toggle("stop", Boolean(abort));
  if (!abort) $("question").focus();
}

function reset() {
  if (state.abort) state.abort.abort();
  state.history = [];
  $("conversation").replaceChildren();
  $("empty").hidden = false;
  closePanel();
  $("question").focus();
}

// -- the citation panel ----------------------------------------------------------------------------

function openCitation(turn, n) {
  const source = (turn.answer ? turn.answer.sources : turn.sources).find((s) => s.n === n);
  if (!source) return;
  const evidence = turn.answer && turn.answer.evidence.find((e) => e.n === n);
  // a source that backs no sentence of the answer: its sentence closest to the question is marked
  openPanel(source, evidence ? evidence.snippet : source.best || source.snippet, Boolean(evidence) || !turn.answer);
}

async function openPanel(source, quote, supporting = false) {
  const panel = $("panel");
  panel.hidden = false;
  document.body.classList.add("panel-open");
  $("panel-title").textContent = where(source);
  $("panel-note").textContent = "";
  $("panel-page").hidden = true;
  $("panel-text").replaceChildren();
  panel.dataset.state = "loading";
  panel.dataset.chunk = source.chunk_id;
  let data;
  try {
    const query = new URLSearchParams({ chunk: source.chunk_id, quote: (quote || "").replace(/…$/, "") });
    data = await (await api("/api/passage?" + query)).json();
  } catch (error) {
    $("panel-note").textContent = t("error", { m: error.message });
    panel.dataset.state = "error";
    return;
  }
  if (panel.dataset.chunk !== source.chunk_id) return;  // another citation was opened meanwhile
  const isPdf = /\.pdf$/i.test(data.source.path);
  $("panel-file").href = data.file + (isPdf && data.source.page ? `#page=${data.source.page}` : "");
  renderContext(data);
  if (data.page) await renderPage(data.page, source.chunk_id, supporting);
  if (panel.dataset.chunk !== source.chunk_id) return;
  panel.dataset.state = "ready";
  $("panel-close").focus();
}

function renderContext(data) {
  const text = data.source.text;
  const box = $("panel-text");
  const chunk = el("span", { class: "chunk" });
  if (data.highlight) {
    const [start, end] = data.highlight;
    chunk.append(text.slice(0, start), el("mark", { text: text.slice(start, end) }), text.slice(end));
  } else {
    chunk.append(text);
  }
  box.replaceChildren(
    data.before ? el("span", { class: "around", text: "…" + data.before }) : "",
    chunk,
    data.after ? el("span", { class: "around", text: data.after + "…" }) : "");
  const mark = box.querySelector("mark");
  if (mark && !data.page) mark.scrollIntoView({ block: "center" });
}

function renderPage(page, chunk, supporting) {
  const image = $("page-image");
  const layer = $("page-boxes");
  layer.replaceChildren();
  const width = Math.min(2400, Math.round(($("panel").clientWidth || 800) * (window.devicePixelRatio || 1)));
  const url = `${page.image}&width=${Math.max(100, width)}`;
  return new Promise((resolve) => {
    let settled = false;
    const current = () => !settled && $("panel").dataset.chunk === chunk;  // not superseded by another citation
    const shown = () => {
      if (!current()) return resolve();
      settled = true;
      for (const [x0, y0, x1, y1] of page.boxes) {
        const box = el("div");
        box.style.left = `${x0 * 100}%`;
        box.style.top = `${y0 * 100}%`;
        box.style.width = `${(x1 - x0) * 100}%`;
        box.style.height = `${(y1 - y0) * 100}%`;
        layer.append(box);
      }
      $("panel-page").hidden = false;
      $("panel-note").textContent = page.error ? t("no_page", { e: page.error })
        : !page.kind ? t("boxes_none") : t((supporting ? "boxes_" : "closest_") + page.kind);
      const first = layer.firstElementChild;
      if (first) first.scrollIntoView({ block: "center" });
      resolve();
    };
    image.onload = shown;
    image.onerror = () => {
      if (current()) $("panel-note").textContent = t("no_page", { e: page.error || "" });
      settled = true;
      resolve();
    };
    image.src = url;
    if (image.complete && image.naturalWidth) shown();  // the same page again: no new load event
  });
}

function closePanel() {
  $("panel").hidden = true;
  $("panel").dataset.chunk = "";
  document.body.classList.remove("panel-open");
}

// -- search ------------------------------------------------------------------------------------------

const list = (value) => value.split(",").map((s) => s.trim()).filter(Boolean);

async function search(query) {
  const results = $("results");
  results.replaceChildren();
  const body = { query, mode: $("mode").value, types: list($("types").value), paths: list($("paths").value) };
  const collection = $("collection").value;
  if (collection) body.collection = collection;
  try {
    const data = await (await api("/api/search", { method: "POST", body })).json();
    if (!data.hits.length) results.append(el("li", { class: "hint", text: t("no_results") }));
    for (const hit of data.hits) {
      results.append(el("li", {},
        el("a", { class: "loc", href: "#", onclick: (e) => { e.preventDefault(); openPanel(hit, hit.best); } }, where(hit)),
        hit.ocr !== null && hit.ocr !== undefined ? el("span", { class: "tag", text: t("ocr", { p: Math.round(hit.ocr * 100) + "%" }) }) : null,
        el("span", { class: "score", text: t("score", { s: hit.score.toFixed(3) }) }),
        el("p", { text: hit.best })));
    }
  } catch (error) {
    results.append(el("li", { class: "error", text: t("error", { m: error.message }) }));
  }
}

// -- status ------------------------------------------------------------------------------------------

function table(headers, rows, numeric = []) {
  return el("table", {},
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { text: h })))),
    el("tbody", {}, ...rows.map((row) => el("tr", {}, ...row.map((cell, i) => el("td", { class: numeric.includes(i) ? "num" : null, text: String(cell) }))))));
}

function renderStatus(st) {
  const box = $("status");
  if (!st.exists) {
    box.replaceChildren(el("p", { text: t("no_index", { p: st.path }) }));
    return;
  }
  const failures = Object.entries(st.failures || {});
  const skipped = Object.entries(st.skipped || {});
  box.replaceChildren(
    el("h2", { text: t("index") }),
    table([t("location"), t("documents"), t("chunks"), t("ocr_pages"), t("version")],
      [[st.path, st.documents, st.chunks, st.ocr_pages, st.version]], [1, 2, 3]),
    el("h2", { text: t("collections") }),
    table([t("name"), t("documents"), t("chunks")],
      Object.entries(st.collections).map(([name, c]) => [name, c.documents, c.chunks]), [1, 2]),
    el("h2", { text: t("models") }),
    table([t("embedder"), t("llm")], [[`${st.embedder} (${st.dim})`, st.llm]]),
    el("h2", { text: `${t("failed")} (${failures.length})` }),
    failures.length ? table([t("file"), t("reason")], failures.map(([path, f]) => [path, f.reason])) : el("p", { class: "hint", text: t("none") }),
    skipped.length ? el("h2", { text: `${t("skipped")} (${skipped.length})` }) : "",
    skipped.length ? table([t("file"), t("reason")], skipped.map(([path, why]) => [path, why])) : "");
  box.dataset.state = "ready";
}

async function loadStatus() {
  try {
    state.status = await (await api("/api/status")).json();
  } catch (error) {
    $("status").replaceChildren(el("p", { class: "error", text: t("error", { m: error.message }) }));
    return;
  }
  const select = $("collection");
  const chosen = select.value || state.status.default_collection || "";
  for (const option of [...select.options].slice(1)) option.remove();
  for (const name of Object.keys(state.status.collections)) select.append(el("option", { value: name, text: name }));
  select.value = chosen in state.status.collections ? chosen : "";
  renderStatus(state.status);
}

// -- wiring ------------------------------------------------------------------------------------------

function show(view) {
  for (const name of ["ask", "search", "status"]) {
    $(`view-${name}`).hidden = name !== view;
    $(`tab-${name}`).setAttribute("aria-pressed", String(name === view));
  }
  if (view === "status") loadStatus();
  (view === "ask" ? $("question") : view === "search" ? $("query") : $("tab-status")).focus();
}

document.addEventListener("DOMContentLoaded", () => {
  applyLanguage(pickLanguage());
  $("lang").addEventListener("change", (e) => {
    localStorage.setItem("rag-lang", e.target.value);
    applyLanguage(e.target.value);
  });
  for (const button of document.querySelectorAll(".tabs button")) button.addEventListener("click", () => show(button.dataset.view));
  $("ask-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const question = $("question").value.trim();
    if (!question || state.abort) return;  // one answer at a time
    $("question").value = "";
    ask(question);
  });
  $("question").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {  // not while an IME is composing Chinese
      e.preventDefault();
      $("ask-form").requestSubmit();
    }
  });
  $("reset").addEventListener("click", reset);
  $("send").addEventListener("click", (e) => {
    if (!state.abort) return;
    e.preventDefault();
    state.abort.abort();
  });
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const query = $("query").value.trim();
    if (query) search(query);
    else $("results").replaceChildren();
  });
  $("panel-close").addEventListener("click", closePanel);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !$("panel").hidden && !$("login").open) closePanel();
  });
  loadStatus();
  $("question").focus();
});
