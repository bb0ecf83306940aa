// The pages' behaviour: Alpine.js components (its CSP build, so no inline script and no eval)
// that call Darkroom's JSON API with fetch, exactly as any client does. The key a person
// pastes stays in this tab's sessionStorage: never in a cookie (the server would receive it
// with every request) nor in a URL (it would land in history and access logs).
"use strict";

const KEY_SLOT = "darkroom.key";
const ADMIN_SLOT = "darkroom.adminKey";
const SEEDS_SLOT = "darkroom.seeds";
const POLL_MS = 1000;
const CONSOLE_POLL_MS = 5000;
const PAGE_SIZE = 12;
const FINISHED = ["done", "failed"];

// What each of the media API's codes means to a person, in words they can act on.
const PLAIN = {
  1: "Something went wrong on the server. Try again in a moment.",
  2: "This key was not accepted: it is unknown or it was revoked. Check that you pasted all of it.",
  3: "The request was not accepted:",
  4: "That was not found.",
  5: "This key's balance is too low for this model. Ask the operator to top it up.",
  6: "The server is busy right now. Try again in a moment.",
  7: "This key may not use this model. Choose another one.",
  99: "The server does not know this request. Is it an older version of Darkroom?",
  1001: "The request was refused: sensitive content was detected in it.",
  1002: "The prompt was refused by the content check. Try other words.",
};

class ApiProblem extends Error {}

// The words after the hosted service's fixed sentence: what exactly was wrong.
function details(message) {
  const text = String(message || "");
  const cut = text.indexOf(". ");
  return cut >= 0 ? text.slice(cut + 2) : "";
}

function plainWords(answer) {
  const code = answer.code;
  if (code === 3) return PLAIN[3] + " " + (details(answer.message) || answer.message);
  if (code === 2 && /operator/.test(answer.message || "")) return details(answer.message);
  return PLAIN[code] || answer.message || "The server refused the request (code " + code + ").";
}

async function call(key, method, path, body) {
  const headers = { Authorization: key };
  const init = { method, headers, cache: "no-store", referrerPolicy: "no-referrer" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (_) {
    throw new ApiProblem("The server could not be reached. Check that Darkroom is running.");
  }
  let answer;
  try {
    answer = await response.json();
  } catch (_) {
    throw new ApiProblem("The server answered something that is not JSON (HTTP " + response.status + ").");
  }
  if (!response.ok) throw new ApiProblem("The server refused the request (HTTP " + response.status + ").");
  if (answer.code !== 0) throw new ApiProblem(plainWords(answer));
  return answer;
}

function problemText(error) {
  return error instanceof ApiProblem ? error.message : "Something went wrong in this page: " + error;
}

function money(amount) {
  if (amount === null || amount === undefined) return "unmetered";
  return Number(amount).toLocaleString(undefined, { maximumFractionDigits: 6 });
}

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : "";
}

// The seeds this tab chose, by task id: the API does not echo a task's seed.
function rememberSeed(taskId, seed) {
  const seeds = JSON.parse(sessionStorage.getItem(SEEDS_SLOT) || "{}");
  seeds[taskId] = seed;
  sessionStorage.setItem(SEEDS_SLOT, JSON.stringify(seeds));
}

function seedOf(task) {
  if (task.seed !== undefined && task.seed !== null) return task.seed;
  const seeds = JSON.parse(sessionStorage.getItem(SEEDS_SLOT) || "{}");
  return seeds[task.id] === undefined ? null : seeds[task.id];
}

// The prompt as created: the API echoes it with " --ar <ratio>" when a ratio was sent.
function splitPrompt(echoed) {
  const match = /^(.*) --ar (\S+)$/s.exec(echoed || "");
  return match ? { prompt: match[1], ar: match[2] } : { prompt: echoed || "", ar: null };
}

function randomSeed() {
  const words = new Uint32Array(1);
  crypto.getRandomValues(words);
  return words[0] % 2147483647;
}

// The key form's part of a component (templates/key_form.html): the key pasted is kept in
// `slot` of this tab's sessionStorage. The component says what follows, in keyUsed() and
// keyForgotten().
function keyForm(slot) {
  return {
    keyInput: "",
    saved: Boolean(sessionStorage.getItem(slot)),
    useKey() {
      const key = this.keyInput.trim();
      if (!key) return;
      sessionStorage.setItem(slot, key);
      this.keyInput = "";
      this.saved = true;
      this.keyUsed();
    },
    forgetKey() {
      sessionStorage.removeItem(slot);
      this.saved = false;
      this.keyForgotten();
    },
  };
}

document.addEventListener("alpine:init", () => {
  const Alpine = window.Alpine;

  Alpine.data("keyBox", () => ({
    ...keyForm(KEY_SLOT),
    keyUsed() {
      window.dispatchEvent(new CustomEvent("darkroom:key"));
    },
    keyForgotten() {
      window.dispatchEvent(new CustomEvent("darkroom:key"));
    },
  }));

  Alpine.data("playground", () => ({
    models: [],
    modelId: "",
    ratio: "",
    prompt: "",
    seed: "",
    referenceUrl: "",
    references: [],
    error: "",
    task: null,
    seedUsed: null,
    busy: false,
    init() {
      window.addEventListener("darkroom:key", () => this.loadModels());
      window.addEventListener("darkroom:run-again", (event) => this.runAgain(event.detail));
      this.loadModels();
    },
    get model() {
      return this.models.find((m) => m.id === this.modelId) || null;
    },
    get ratios() {
      return this.model ? this.model.ratios : [];
    },
    get takesImages() {
      return Boolean(this.model && this.model.max_images > 0);
    },
    get hasKey() {
      return this.models.length > 0;
    },
    get finished() {
      return Boolean(this.task && FINISHED.includes(this.task.status));
    },
    get waiting() {
      return Boolean(this.task && !FINISHED.includes(this.task.status));
    },
    // What the result is: a video (an MP4 link), audio tracks (the audio models' `result`
    // array), or an image.
    get resultKind() {
      const task = this.task;
      if (!task || task.status !== "done") return "";
      if (Array.isArray(task.result)) return "audio";
      return /\.mp4(\?|$)/.test(task.url || "") ? "video" : "image";
    },
    get tracks() {
      return this.task && Array.isArray(this.task.result) ? this.task.result : [];
    },
    get statusLine() {
      const task = this.task;
      if (!task) return "";
      if (task.status === "idle") {
        const ahead = task.queue_position;
        if (ahead === undefined || ahead === null) return "Queued.";
        return ahead === 0 ? "Queued: next in line." : "Queued: " + ahead + " ahead of it.";
      }
      if (task.status === "processing") return "Generating: " + (task.progress || 0) + "%";
      if (task.status === "done") return "Done.";
      return "Failed: " + (task.message || "no reason was given.");
    },
    async loadModels() {
      const key = sessionStorage.getItem(KEY_SLOT);
      this.error = "";
      if (!key) {
        this.models = [];
        return;
      }
      try {
        const answer = await call(key, "GET", "/v1/media/models");
        this.models = answer.data;
        if (!this.model && this.models.length) this.modelId = this.models[0].id;
        this.chooseModel();
      } catch (error) {
        this.models = [];
        this.error = problemText(error);
      }
    },
    chooseModel() {
      const model = this.model;
      if (model && !model.ratios.includes(this.ratio)) this.ratio = model.default_ratio;
      if (!this.takesImages) this.references = [];
    },
    addReferenceUrl() {
      const url = this.referenceUrl.trim();
      if (url) this.addReference(url);
      this.referenceUrl = "";
    },
    addReferenceFile(event) {
      const file = event.target.files && event.target.files[0];
      if (!file) return;
      const reader = new FileReader();
      reader.onload = () => this.addReference(reader.result);
      reader.readAsDataURL(file);
      event.target.value = "";
    },
    addReference(url) {
      const most = this.model ? this.model.max_images : 0;
      if (this.references.length >= most) {
        this.error = "This model takes at most " + most + " reference image(s).";
        return;
      }
      this.references.push(url);
    },
    removeReference(index) {
      this.references.splice(index, 1);
    },
    async create() {
      const key = sessionStorage.getItem(KEY_SLOT);
      this.error = "";
      if (!key) {
        this.error = "Paste your API key first.";
        return;
      }
      if (!this.prompt.trim()) {
        this.error = "Write a prompt first.";
        return;
      }
      const seed = this.seed === "" ? randomSeed() : Number(this.seed);
      const body = { model: this.modelId, prompt: this.prompt, ar: this.ratio, seed };
      if (this.references.length) body.images = this.references.slice();
      this.busy = true;
      try {
        const task = await call(key, "POST", "/v1/media/create", body);
        rememberSeed(task.id, seed);
        this.seedUsed = seed;
        this.task = task;
        window.dispatchEvent(new CustomEvent("darkroom:tasks"));
        this.follow(task.id);
      } catch (error) {
        this.error = problemText(error);
      } finally {
        this.busy = false;
      }
    },
    async follow(taskId) {
      const key = sessionStorage.getItem(KEY_SLOT);
      while (this.task && this.task.id === taskId && !FINISHED.includes(this.task.status)) {
        await new Promise((done) => setTimeout(done, POLL_MS));
        try {
          const task = await call(key, "GET", "/v1/media/result?task_id=" + encodeURIComponent(taskId));
          if (this.task && this.task.id === taskId) this.task = task;
        } catch (error) {
          this.error = problemText(error);
          return;
        }
      }
      window.dispatchEvent(new CustomEvent("darkroom:tasks"));
    },
    runAgain(detail) {
      this.modelId = detail.model;
      this.chooseModel();
      if (detail.ar) this.ratio = detail.ar;
      this.prompt = detail.prompt;
      this.seed = detail.seed === null ? "" : String(detail.seed);
      this.$el.scrollIntoView({ behavior: "smooth" });
    },
  }));

  Alpine.data("gallery", () => ({
    tasks: [],
    cursors: [null],
    page: 0,
    nextCursor: null,
    selected: null,
    error: "",
    timer: null,
    key: "",
    init() {
      window.addEventListener("darkroom:key", () => this.first());
      window.addEventListener("darkroom:tasks", () => this.load());
      this.first();
    },
    get hasKey() {
      return this.key !== "";
    },
    get empty() {
      return this.hasKey && !this.error && this.tasks.length === 0;
    },
    get hasOlder() {
      return Boolean(this.nextCursor);
    },
    get hasNewer() {
      return this.page > 0;
    },
    get pageLabel() {
      return "Page " + (this.page + 1);
    },
    first() {
      this.cursors = [null];
      this.page = 0;
      this.selected = null;
      this.load();
    },
    async load() {
      const key = sessionStorage.getItem(KEY_SLOT) || "";
      this.key = key;
      clearTimeout(this.timer);
      if (!key) {
        this.tasks = [];
        return;
      }
      let path = "/v1/media/tasks?limit=" + PAGE_SIZE;
      const cursor = this.cursors[this.page];
      if (cursor) path += "&cursor=" + encodeURIComponent(cursor);
      try {
        const answer = await call(key, "GET", path);
        this.error = "";
        this.tasks = answer.data;
        this.nextCursor = answer.next_cursor;
      } catch (error) {
        this.tasks = [];
        this.error = problemText(error);
        return;
      }
      // Tasks still at work are shown as they move on.
      if (this.tasks.some((task) => !FINISHED.includes(task.status))) {
        this.timer = setTimeout(() => this.load(), POLL_MS * 2);
      }
    },
    older() {
      if (!this.nextCursor) return;
      this.cursors[this.page + 1] = this.nextCursor;
      this.page += 1;
      this.load();
    },
    newer() {
      if (this.page === 0) return;
      this.page -= 1;
      this.load();
    },
    select(task) {
      this.selected = task;
    },
    close() {
      this.selected = null;
    },
    isDone(task) {
      return task.status === "done" && Boolean(task.url);
    },
    promptOf(task) {
      return splitPrompt(task.prompt).prompt;
    },
    seedText(task) {
      const seed = seedOf(task);
      return seed === null ? "not known (made elsewhere)" : String(seed);
    },
    money,
    when,
    runAgain(task) {
      const parts = splitPrompt(task.prompt);
      const detail = { model: task.model, prompt: parts.prompt, ar: parts.ar, seed: seedOf(task) };
      window.dispatchEvent(new CustomEvent("darkroom:run-again", { detail }));
      this.selected = null;
    },
  }));

  Alpine.data("console", () => ({
    ...keyForm(ADMIN_SLOT),
    keys: [],
    queue: [],
    workers: [],
    models: [],
    failures: [],
    error: "",
    notice: "",
    newKey: "",
    name: "",
    balance: "",
    creditLimit: "",
    modelsText: "",
    admin: false,
    timer: null,
    init() {
      this.refresh();
    },
    keyUsed() {
      this.refresh();
    },
    keyForgotten() {
      this.keys = [];
      this.queue = [];
      this.workers = [];
      this.failures = [];
    },
    async admin_call(method, path, body) {
      return call(sessionStorage.getItem(ADMIN_SLOT), method, path, body);
    },
    async refresh() {
      clearTimeout(this.timer);
      if (!sessionStorage.getItem(ADMIN_SLOT)) return;
      try {
        const [keys, queue, workers, failures] = await Promise.all([
          this.admin_call("GET", "/v1/admin/keys"),
          this.admin_call("GET", "/v1/admin/queue"),
          this.admin_call("GET", "/v1/admin/workers"),
          this.admin_call("GET", "/v1/admin/failures?limit=20"),
        ]);
        this.keys = keys.data;
        this.queue = queue.data;
        this.workers = workers.data;
        this.models = workers.models;
        this.failures = failures.data;
        this.error = "";
      } catch (error) {
        this.error = problemText(error);
        return;
      }
      this.timer = setTimeout(() => this.refresh(), CONSOLE_POLL_MS);
    },
    async act(what, method, path, body) {
      this.error = "";
      this.notice = "";
      try {
        const answer = await this.admin_call(method, path, body);
        this.notice = what;
        await this.refresh();
        return answer;
      } catch (error) {
        this.error = problemText(error);
        return null;
      }
    },
    async createKey() {
      const body = { name: this.name.trim() || "default", admin: this.admin };
      if (this.balance !== "") body.balance = this.balance;
      if (this.creditLimit !== "") body.credit_limit = this.creditLimit;
      const models = this.modelsText.split(",").map((m) => m.trim()).filter(Boolean);
      if (models.length) body.models = models;
      const answer = await this.act("Key created.", "POST", "/v1/admin/keys", body);
      if (answer) {
        this.newKey = answer.key;
        this.name = "";
        this.balance = "";
        this.creditLimit = "";
        this.modelsText = "";
        this.admin = false;
      }
    },
    dismissNewKey() {
      this.newKey = "";
    },
    async topUp(key, amount) {
      if (String(amount).trim() === "") {
        this.error = "Write the amount to add first.";
        return;
      }
      await this.act("Topped up key " + key.prefix + ".", "POST", "/v1/admin/keys/" + key.id + "/topup", { amount: String(amount).trim() });
    },
    async setLimits(key, creditLimit, modelsText) {
      const body = {};
      if (String(creditLimit).trim() !== "") body.credit_limit = String(creditLimit).trim();
      const models = String(modelsText).split(",").map((m) => m.trim()).filter(Boolean);
      body.models = models.length ? models : null;
      await this.act("Limits of key " + key.prefix + " set.", "POST", "/v1/admin/keys/" + key.id + "/limits", body);
    },
    async revoke(key) {
      await this.act("Key " + key.prefix + " revoked.", "POST", "/v1/admin/keys/" + key.id + "/revoke");
    },
    isLive(key) {
      return !key.revoked_at;
    },
    modelsOf(key) {
      return key.models ? key.models.join(", ") : "all";
    },
    spendOf(key) {
      if (!key.spend.length) return "nothing yet";
      return key.spend.map((s) => s.model + ": " + money(s.cost) + " (" + s.tasks + ")").join(", ");
    },
    money,
    when,
  }));

  // One row of the keys table: its own inputs, the console's actions.
  Alpine.data("keyRow", () => ({ amount: "", rowLimit: "", rowModels: "" }));
});
