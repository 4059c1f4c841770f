// Todo Chat — the page's only script. Talks to this frontend's same-origin /api only.
// All user content is inserted with textContent (never innerHTML).
(() => {
  "use strict";

  const DRAFT_KEY = "todo.chatDraft";
  const CONV_KEY = "todo.conversationId";
  const MESSAGE_PAGE = 100; // messages per page of a conversation (the backend's default)
  const $ = (sel, root = document) => root.querySelector(sel);

  let csrf = $('meta[name="csrf-token"]').content;
  let conversationId = sessionStorage.getItem(CONV_KEY) || null;
  let statusFilter = "all";
  let busy = false;
  let allTasks = [];
  let conversationsSignature = null;

  const els = {
    messages: $("#messages"),
    welcome: $("#welcome"),
    thinking: $("#thinking"),
    composer: $("#composer"),
    input: $("#message"),
    send: $("#send"),
    convList: $("#conv-list"),
    convMenu: $("#conv-menu"),
    taskList: $("#task-list"),
    taskCount: $("#task-count"),
    tasksEmpty: $("#tasks-empty"),
    tasksEmptyText: $("#tasks-empty-text"),
    tasksLoading: $("#tasks-loading"),
    addTask: $("#add-task"),
    newTitle: $("#new-title"),
    taskError: $("#task-error"),
    banner: $("#banner"),
    bannerText: $("#banner-text"),
    toast: $("#toast"),
    template: $("#task-template"),
  };

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
      this.detail = detail;
    }
  }

  // A refusal's sentence, with when to try again for a 429 that says (Retry-After, seconds).
  function refusalDetail(res, detail) {
    const retry = Number.parseInt(res.headers.get("Retry-After") || "", 10);
    if (res.status !== 429 || !Number.isFinite(retry) || retry < 0) return detail;
    const when = retry === 1 ? "1 second" : `${retry} seconds`;
    return `${detail.replace(/\s*$/, "")} Try again in ${when}.`;
  }

  // ---------------------------------------------------------------- plumbing
  function showBanner(text) {
    els.bannerText.textContent = text;
    els.banner.hidden = false;
  }
  function hideBanner() {
    els.banner.hidden = true;
  }

  let toastTimer = null;
  function toast(text, kind = "info") {
    els.toast.textContent = text;
    els.toast.dataset.kind = kind;
    els.toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { els.toast.hidden = true; }, 4000);
  }

  function sessionExpired() {
    // Keep the unsent message (already mirrored in sessionStorage) and go sign in.
    if (els.input.value.trim()) sessionStorage.setItem(DRAFT_KEY, els.input.value);
    window.location.assign("/?expired=1");
  }

  async function refreshCsrf() {
    const res = await fetch("/api/session", { credentials: "same-origin" });
    const data = await res.json();
    csrf = data.csrf_token;
    if (!data.authenticated) sessionExpired();
  }

  async function api(method, path, body, retried = false) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      showBanner("Can't reach Todo Chat — check your connection and try again.");
      throw new ApiError(0, "Network error");
    }
    let data = null;
    if (res.status !== 204) {
      try { data = await res.json(); } catch { data = null; }
    }
    const detail = refusalDetail(res,
      data && typeof data.detail === "string" ? data.detail : `Request failed (HTTP ${res.status})`);
    if (res.status === 401) {
      sessionExpired();
      throw new ApiError(401, detail);
    }
    if (res.status === 403 && !retried && /csrf/i.test(detail)) {
      await refreshCsrf();
      return api(method, path, body, true);
    }
    if (res.status === 503) {
      showBanner(detail);
      throw new ApiError(503, detail);
    }
    if (!res.ok) throw new ApiError(res.status, detail);
    hideBanner();
    return data;
  }

  // ---------------------------------------------------------------- chat
  // "add_task · Buy milk": the tool's name and the task it touched (or what it found).
  function chipLabel(call) {
    const args = (call && typeof call.arguments === "object" && call.arguments) || {};
    const result = (call && typeof call.result === "object" && call.result) || {};
    const task = result.task && typeof result.task === "object" ? result.task : null;
    const list = Array.isArray(result.tasks) ? result.tasks
      : Array.isArray(result.items) ? result.items : Array.isArray(result) ? result : null;
    let what = (task && task.title) || args.title || result.title || "";
    if (!what && args.task_id !== undefined && args.task_id !== null) what = `#${args.task_id}`;
    if (!what && list) what = `${typeof result.count === "number" ? result.count : list.length} found`;
    if (!what && args.status) what = String(args.status);
    return what ? `${call.name} · ${what}` : String((call && call.name) || "tool");
  }

  function chipFailed(call) {
    const res = call && call.result;
    if (!res || typeof res !== "object" || Array.isArray(res)) return false;
    return Boolean(res.error) || res.ok === false || res.status === "error" || res.status === "not_found";
  }

  function addMessage(role, text, toolCalls) {
    els.welcome.hidden = true;
    const li = buildMessage(role, text, toolCalls);
    els.messages.append(li);
    li.scrollIntoView({ block: "end", behavior: "smooth" });
    return li;
  }

  function buildMessage(role, text, toolCalls) {
    const li = document.createElement("li");
    li.className = `bubble ${role}`;
    if (role === "assistant" || role === "error") {
      const who = document.createElement("span");
      who.className = "sr-only";
      who.textContent = role === "error" ? "Error: " : "Assistant: ";
      li.append(who);
    } else {
      const who = document.createElement("span");
      who.className = "sr-only";
      who.textContent = "You: ";
      li.append(who);
    }
    const p = document.createElement("p");
    p.className = "bubble-text";
    p.textContent = text;
    li.append(p);
    if (Array.isArray(toolCalls) && toolCalls.length) {
      const chips = document.createElement("div");
      chips.className = "chips";
      chips.setAttribute("aria-label", "Actions taken");
      for (const call of toolCalls) {
        const chip = document.createElement("span");
        chip.className = "chip";
        if (chipFailed(call)) chip.classList.add("chip-error");
        chip.textContent = chipLabel(call);
        chips.append(chip);
      }
      li.append(chips);
    }
    return li;
  }

  function setThinking(on) {
    busy = on;
    els.thinking.hidden = !on;
    els.send.disabled = on;
    els.send.setAttribute("aria-busy", on ? "true" : "false");
    if (on) els.thinking.scrollIntoView({ block: "end", behavior: "smooth" });
  }

  async function send(raw) {
    const text = (raw || "").trim();
    if (!text || busy) return;
    sessionStorage.setItem(DRAFT_KEY, text);
    els.input.value = "";
    autosize();
    const bubble = addMessage("user", text);
    setThinking(true);
    try {
      const body = conversationId ? { conversation_id: conversationId, message: text } : { message: text };
      const data = await api("POST", "/api/chat", body);
      if (data.conversation_id !== undefined && data.conversation_id !== null) {
        conversationId = String(data.conversation_id);
        sessionStorage.setItem(CONV_KEY, conversationId);
      }
      sessionStorage.removeItem(DRAFT_KEY);
      addMessage("assistant", data.response || "", data.tool_calls);
      await Promise.allSettled([loadTasks(), loadConversations()]);
    } catch (err) {
      if (err.status === 401) return;
      bubble.remove();
      if (!els.input.value) els.input.value = text;
      autosize();
      addMessage("error", err.detail || "The assistant could not answer. Try again.");
    } finally {
      setThinking(false);
      els.input.focus();
    }
  }

  function resetChat() {
    conversationId = null;
    sessionStorage.removeItem(CONV_KEY);
    els.messages.replaceChildren();
    els.welcome.hidden = false;
    markCurrentConversation();
  }

  // One page of a conversation, oldest first: the newest MESSAGE_PAGE, or those before a message id.
  function messagesPage(id, before) {
    const query = new URLSearchParams({ limit: String(MESSAGE_PAGE) });
    if (before !== undefined) query.set("before", String(before));
    return api("GET", `/api/conversations/${encodeURIComponent(id)}/messages?${query}`);
  }

  // History is shown as it is: only a message that arrives now pops in (a page of 100
  // animating at once is work for nothing, and each is invisible until its animation ends).
  function chatBubbles(items) {
    return items.filter((m) => m.role === "user" || m.role === "assistant")
      .map((m) => {
        const li = buildMessage(m.role, m.content || "");
        li.classList.add("history");
        return li;
      });
  }

  // A full page may have older messages before it: offer them, loaded on demand.
  function earlierButton(id, items) {
    if (!Array.isArray(items) || items.length !== MESSAGE_PAGE || items[0].id === undefined) return [];
    const li = document.createElement("li");
    li.className = "older";
    const btn = document.createElement("button");
    btn.type = "button";
    btn.className = "btn btn-ghost btn-small";
    btn.dataset.testid = "load-older";
    btn.textContent = "Load earlier messages";
    btn.addEventListener("click", async () => {
      btn.disabled = true;
      try {
        const older = await messagesPage(id, items[0].id);
        if (conversationId !== String(id)) return;
        li.replaceWith(...earlierButton(id, older), ...chatBubbles(Array.isArray(older) ? older : []));
      } catch (err) {
        btn.disabled = false;
        if (err.status !== 401 && err.status !== 503) toast(err.detail, "error");
      }
    });
    li.append(btn);
    return [li];
  }

  async function openConversation(id) {
    try {
      const items = await messagesPage(id);
      conversationId = String(id);
      sessionStorage.setItem(CONV_KEY, conversationId);
      els.welcome.hidden = items.length > 0;
      els.messages.replaceChildren(...earlierButton(id, items), ...chatBubbles(items));
      const last = els.messages.lastElementChild;
      if (last) last.scrollIntoView({ block: "end" });
      markCurrentConversation();
    } catch (err) {
      if (err.status === 404 || err.status === 403) resetChat();
      else if (err.status !== 401 && err.status !== 503) toast(err.detail, "error");
    }
  }

  function markCurrentConversation() {
    for (const btn of els.convList.querySelectorAll("button")) {
      const current = btn.dataset.id === conversationId;
      btn.classList.toggle("current", current);
      if (current) btn.setAttribute("aria-current", "true");
      else btn.removeAttribute("aria-current");
    }
  }

  function shortDate(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return "";
    const sameDay = d.toDateString() === new Date().toDateString();
    return sameDay
      ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : d.toLocaleDateString([], { month: "short", day: "numeric" });
  }

  async function loadConversations() {
    let items;
    try {
      items = await api("GET", "/api/conversations");
    } catch {
      return;
    }
    if (!Array.isArray(items)) items = (items && items.items) || [];
    const signature = JSON.stringify(items.map((c) => [c.id, c.title, c.updated_at]));
    if (signature === conversationsSignature) {
      markCurrentConversation();
      return;
    }
    conversationsSignature = signature;
    els.convList.replaceChildren();
    if (!items.length) {
      const li = document.createElement("li");
      li.className = "muted menu-empty";
      li.textContent = "No conversations yet.";
      els.convList.append(li);
      return;
    }
    for (const c of items) {
      const li = document.createElement("li");
      const btn = document.createElement("button");
      btn.type = "button";
      btn.className = "menu-item";
      btn.dataset.id = String(c.id);
      const title = document.createElement("span");
      title.className = "menu-item-title";
      title.textContent = c.title || "Untitled conversation";
      const when = document.createElement("span");
      when.className = "menu-item-when";
      when.textContent = shortDate(c.updated_at || c.created_at);
      btn.append(title, when);
      btn.addEventListener("click", () => {
        els.convMenu.open = false;
        openConversation(c.id);
      });
      li.append(btn);
      els.convList.append(li);
    }
    markCurrentConversation();
  }

  function autosize() {
    els.input.style.height = "auto";
    els.input.style.height = `${Math.min(els.input.scrollHeight, 160)}px`;
    els.input.style.overflowY = els.input.scrollHeight > 160 ? "auto" : "hidden";
  }

  // ---------------------------------------------------------------- tasks
  async function fetchTasks() {
    try {
      return await api("GET", "/api/tasks?status=all&limit=100");
    } catch (err) {
      if (err.status === 422) return api("GET", "/api/tasks");
      throw err;
    }
  }

  async function loadTasks() {
    try {
      const data = await fetchTasks();
      allTasks = Array.isArray(data) ? data : (data && data.items) || [];
    } catch (err) {
      if (err.status !== 401 && err.status !== 503) toast(err.detail, "error");
      return;
    } finally {
      els.tasksLoading.hidden = true;
    }
    renderTasks();
  }

  function renderTasks() {
    const open = allTasks.filter((t) => !t.completed).length;
    const done = allTasks.length - open;
    els.taskCount.textContent = allTasks.length ? `${open} open · ${done} done` : "";
    const shown = allTasks.filter((t) =>
      statusFilter === "all" ? true : statusFilter === "completed" ? t.completed : !t.completed);
    // Open tasks first, then completed; newest first within each group.
    shown.sort((a, b) => (a.completed - b.completed) || String(b.created_at).localeCompare(String(a.created_at)));
    els.taskList.replaceChildren(...shown.map(renderTask));
    els.tasksEmpty.hidden = shown.length > 0;
    if (!shown.length) {
      if (statusFilter === "all") {
        els.tasksEmptyText.replaceChildren("No tasks yet — try: ", Object.assign(document.createElement("em"), { textContent: "add a task to buy milk" }));
      } else if (statusFilter === "pending") {
        els.tasksEmptyText.textContent = "Nothing open — nice work!";
      } else {
        els.tasksEmptyText.textContent = "No completed tasks yet.";
      }
    }
  }

  function renderTask(task) {
    const li = els.template.content.firstElementChild.cloneNode(true);
    const id = String(task.id);
    li.dataset.id = id;
    li.classList.toggle("done", !!task.completed);
    const check = $(".task-check", li);
    check.id = `task-${id}`;
    check.checked = !!task.completed;
    // The user's own task number (1, 2, 3 ...): the one to name in the chat.
    $(".task-num", li).textContent = `#${id}`;
    const title = $(".task-title", li);
    const label = document.createElement("label");
    label.className = "task-title";
    label.htmlFor = check.id;
    label.textContent = task.title;
    title.replaceWith(label);
    const desc = $(".task-desc", li);
    if (task.description) desc.textContent = task.description;
    else desc.remove();
    const edit = $(".task-edit", li);
    edit.setAttribute("aria-label", `Edit “${task.title}”`);
    edit.title = "Edit";
    const del = $(".task-delete", li);
    del.setAttribute("aria-label", `Delete “${task.title}”`);
    del.title = "Delete";

    check.addEventListener("change", async () => {
      li.classList.toggle("done", check.checked);
      try {
        await api("PATCH", `/api/tasks/${encodeURIComponent(id)}/complete`, { completed: check.checked });
        task.completed = check.checked;
        renderTasks();
        const again = els.taskList.querySelector(`li[data-id="${CSS.escape(id)}"] .task-check`);
        if (again) again.focus();
      } catch (err) {
        check.checked = !check.checked;
        li.classList.toggle("done", check.checked);
        if (err.status !== 401 && err.status !== 503) toast(err.detail, "error");
      }
    });
    edit.addEventListener("click", () => startEdit(li, task));
    del.addEventListener("click", async () => {
      del.disabled = true;
      try {
        await api("DELETE", `/api/tasks/${encodeURIComponent(id)}`);
        allTasks = allTasks.filter((t) => String(t.id) !== id);
        renderTasks();
        toast(`Deleted “${task.title}”`);
        els.newTitle.focus();
      } catch (err) {
        del.disabled = false;
        if (err.status !== 401 && err.status !== 503) toast(err.detail, "error");
      }
    });
    return li;
  }

  function startEdit(li, task) {
    const label = $(".task-title", li);
    const input = document.createElement("input");
    input.type = "text";
    input.className = "task-edit-input";
    input.value = task.title;
    input.maxLength = 200;
    input.setAttribute("aria-label", "Task title");
    label.replaceWith(input);
    li.classList.add("editing");
    input.focus();
    input.select();
    let finished = false;
    const finish = async (save) => {
      if (finished) return;
      finished = true;
      const value = input.value.trim();
      if (save && value && value !== task.title) {
        try {
          const updated = await api("PUT", `/api/tasks/${encodeURIComponent(task.id)}`, { title: value });
          Object.assign(task, updated || { title: value });
        } catch (err) {
          if (err.status !== 401 && err.status !== 503) toast(err.detail, "error");
        }
      }
      renderTasks();
      const edit = els.taskList.querySelector(`li[data-id="${CSS.escape(String(task.id))}"] .task-edit`);
      if (edit) edit.focus();
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); finish(true); }
      else if (e.key === "Escape") { e.preventDefault(); finish(false); }
    });
    input.addEventListener("blur", () => finish(true));
  }

  // ---------------------------------------------------------------- wiring
  els.composer.addEventListener("submit", (e) => {
    e.preventDefault();
    send(els.input.value);
  });
  els.input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send(els.input.value);
    }
  });
  els.input.addEventListener("input", () => {
    autosize();
    if (els.input.value) sessionStorage.setItem(DRAFT_KEY, els.input.value);
    else sessionStorage.removeItem(DRAFT_KEY);
  });
  for (const btn of document.querySelectorAll(".suggestion")) {
    btn.addEventListener("click", () => send(btn.textContent));
  }
  $("#new-chat").addEventListener("click", () => {
    resetChat();
    els.input.focus();
  });
  els.convMenu.addEventListener("toggle", () => {
    if (els.convMenu.open) loadConversations();
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      for (const d of document.querySelectorAll("details[open]")) {
        d.open = false;
        $("summary", d).focus();
      }
    }
  });
  document.addEventListener("click", (e) => {
    for (const d of document.querySelectorAll("details[open]")) {
      if (!d.contains(e.target)) d.open = false;
    }
  });

  els.addTask.addEventListener("submit", async (e) => {
    e.preventDefault();
    const title = els.newTitle.value.trim();
    if (!title) return;
    const button = $("button", els.addTask);
    button.disabled = true;
    showTaskError("");
    try {
      const task = await api("POST", "/api/tasks", { title });
      if (task && task.id !== undefined) allTasks.push(task);
      els.newTitle.value = "";
      if (statusFilter === "completed") setFilter("all");
      else renderTasks();
    } catch (err) {
      // Shown beside the form: a limit reached (409/429) or a refused title says why here.
      if (err.status !== 401 && err.status !== 503) showTaskError(err.detail);
    } finally {
      button.disabled = false;
      els.newTitle.focus();
    }
  });

  function showTaskError(text) {
    els.taskError.textContent = text;
    els.taskError.hidden = !text;
  }
  els.newTitle.addEventListener("input", () => showTaskError(""));

  function setFilter(status) {
    statusFilter = status;
    for (const b of document.querySelectorAll(".filter")) {
      const on = b.dataset.status === status;
      b.classList.toggle("active", on);
      b.setAttribute("aria-pressed", on ? "true" : "false");
    }
    renderTasks();
  }
  for (const b of document.querySelectorAll(".filter")) {
    b.addEventListener("click", () => setFilter(b.dataset.status));
  }

  $("#banner-retry").addEventListener("click", async () => {
    await loadTasks();
    await refreshMeta();
  });

  const logoutForm = $("#logout").form;
  logoutForm.addEventListener("submit", () => {
    sessionStorage.removeItem(CONV_KEY);
    sessionStorage.removeItem(DRAFT_KEY);
  });

  async function refreshMeta() {
    try {
      const meta = await api("GET", "/api/meta");
      const agent = (meta && meta.agent) || {};
      const llm = agent.provider && agent.provider !== "offline";
      $("#mode-label").textContent = llm ? `LLM: ${agent.model || agent.provider}` : "Offline assistant";
      $("#mode-pill").classList.toggle("llm", !!llm);
    } catch {
      /* the banner already explains */
    }
  }

  // ---------------------------------------------------------------- start
  const draft = sessionStorage.getItem(DRAFT_KEY);
  if (draft) {
    els.input.value = draft;
    autosize();
  }
  loadTasks();
  loadConversations();
  if (conversationId) openConversation(conversationId);
  els.input.focus();
})();
