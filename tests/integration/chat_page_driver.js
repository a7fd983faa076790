// Drives the chat page served at / by a running `lookahead moe serve` without a browser: the
// page's script runs in a node vm context with a small stand-in for the DOM, and its fetch() goes
// to the real server. Prints one JSON report of what the page did; test_serve_http.py checks it.
//
// Usage: node chat_page_driver.js BASE_URL API_KEY
"use strict";
const vm = require("vm");

const [base, key] = process.argv.slice(2);

class Element {
  constructor(id = "", tag = "div") {
    this.id = id;
    this.tag = tag;
    this.children = [];
    this.parent = null;
    this.value = "";
    this.className = "";
    this._text = "";
    this.disabled = false;
    this.scrollTop = 0;
    this.scrollHeight = 0;
    this.listeners = {};
  }
  get textContent() {
    return this._text + this.children.map((c) => c.textContent).join("");
  }
  set textContent(t) {
    this._text = String(t);
    this.children = [];
  }
  set innerHTML(h) {
    this._text = String(h);
    this.children = [];
  }
  appendChild(c) {
    c.parent = this;
    this.children.push(c);
    return c;
  }
  insertBefore(c, ref) {
    c.parent = this;
    const i = this.children.indexOf(ref);
    this.children.splice(i < 0 ? this.children.length : i, 0, c);
    return c;
  }
  addEventListener(type, fn) {
    (this.listeners[type] = this.listeners[type] || []).push(fn);
  }
  dispatch(type, ev = {}) {
    for (const fn of this.listeners[type] || []) fn(Object.assign({ preventDefault() {} }, ev));
  }
  requestSubmit() {
    this.dispatch("submit");
  }
  focus() {}
}

const elements = {};
for (const id of ["model", "temperature", "max_tokens", "apikey", "log", "form", "input", "send", "stop", "clear"])
  elements[id] = new Element(id);
elements.temperature.value = "0";

const fetches = [];
const context = vm.createContext({
  document: {
    getElementById: (id) => elements[id] || null,
    createElement: (tag) => new Element("", tag),
  },
  localStorage: { getItem: () => null, setItem() {} },
  location: { search: "" },
  performance,
  URLSearchParams,
  TextDecoder,
  AbortController,
  console,
  fetch: (url, opts = {}) => {
    fetches.push({ url, method: opts.method || "GET" });
    return fetch(base + url, opts);
  },
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const run = (code) => vm.runInContext(code, context);
const bubbles = () => elements.log.children.map((c) => ({ cls: c.className, text: c.textContent }));
async function idle() {
  for (let i = 0; i < 600 && !run("controller === null"); ++i) await sleep(50);
}
async function say(text) {
  elements.input.value = text;
  elements.form.requestSubmit();
  await sleep(10);
  await idle();
}

(async () => {
  const html = await (await fetch(base + "/")).text();
  const script = html.slice(html.indexOf("<script>") + 8, html.indexOf("</script>"));
  const report = {};

  // 1. A link with ?prompt= fills the box and sends nothing.
  context.location.search = "?prompt=" + encodeURIComponent("Hello there") + "&max_tokens=8";
  run(script);
  await sleep(500);
  report.link = {
    posts: fetches.filter((f) => f.method === "POST").length,
    input: elements.input.value,
    max_tokens: elements.max_tokens.value,
  };

  // 2. A failed request (wrong key): its error in the reply's place, nothing added to the history.
  elements.apikey.value = "wrong";
  elements.input.value = "";
  await say("Hi");
  report.failed = { bubbles: bubbles(), history: run("JSON.stringify(history)"), input: elements.input.value };

  // 3. With the right key the same message gets a reply: the history is exactly one exchange.
  elements.apikey.value = key;
  elements.log.innerHTML = "";
  await say("Hi");
  report.ok = { bubbles: bubbles(), history: JSON.parse(run("JSON.stringify(history)")) };

  // 4. A conversation longer than the context: the oldest messages are left out until it fits
  // (the box's max tokens empty: the rest of the context).
  const long = "Tell me more about the history of the city and its old harbour. ".repeat(6);
  run("history = " + JSON.stringify([0, 1, 2, 3].flatMap((i) => [
    { role: "user", content: long + i }, { role: "assistant", content: long + i }])));
  elements.max_tokens.value = "";
  elements.log.innerHTML = "";
  await say("Say hi");
  report.trimmed = { bubbles: bubbles(), history: JSON.parse(run("JSON.stringify(history)")) };

  process.stdout.write(JSON.stringify(report) + "\n");
})().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + "\n");
  process.exit(1);
});
