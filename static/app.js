// What the pages need from script, kept out of the HTML: the Content-Security-Policy allows no
// inline script and no eval, so htmx runs with allowEval off and hx-trigger has no [filters].

// Elements marked data-poll-visible send no request while the tab is hidden (their "every"
// polls skip); "page-visible" fires on <body> when the tab is shown again.
document.addEventListener("htmx:confirm", (event) => {
  if (document.visibilityState !== "visible" && event.detail.elt.hasAttribute("data-poll-visible")) {
    event.preventDefault();
  }
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") {
    document.body.dispatchEvent(new Event("page-visible"));
  }
});

// A form marked data-submit-once sends one request however often its button is clicked (a
// double-clicked confirm is one plan change, one charge; the server's idempotency keys make
// it so too). The button is disabled once the submit has gone; a page restored by the back
// button gets it back.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-submit-once")) {
    return;
  }
  if (form.dataset.submitted) {
    event.preventDefault();
    return;
  }
  form.dataset.submitted = "1";
  // Disabled only after this event: a disabled submitter would leave its value out of the form.
  setTimeout(() => {
    form.querySelectorAll("button[type=submit]").forEach((button) => { button.disabled = true; });
  });
}, true);
window.addEventListener("pageshow", (event) => {
  if (!event.persisted) {
    return;
  }
  document.querySelectorAll("form[data-submit-once]").forEach((form) => {
    delete form.dataset.submitted;
    form.querySelectorAll("button[type=submit]").forEach((button) => { button.disabled = false; });
  });
});

// A "Copy" button (data-copy="<id of a read-only field>", e.g. a new API key) copies that
// field's text and says so in its status element (data-copy-status, aria-live). The button is
// hidden in the HTML and shown here, so a page without script has no dead button: its field
// can still be selected and copied by hand. A field marked data-select-on-focus selects all of
// its text when focused.
function showCopyButtons(root) {
  root.querySelectorAll("button[data-copy][hidden]").forEach((button) => { button.hidden = false; });
}
showCopyButtons(document);
document.addEventListener("htmx:load", (event) => showCopyButtons(event.target));
document.addEventListener("focusin", (event) => {
  if (event.target instanceof HTMLInputElement && event.target.hasAttribute("data-select-on-focus")) {
    event.target.select();
  }
});
document.addEventListener("click", async (event) => {
  const button = event.target instanceof Element ? event.target.closest("button[data-copy]") : null;
  if (!button) {
    return;
  }
  const field = document.getElementById(button.dataset.copy);
  const status = document.querySelector(`[data-copy-status="${button.dataset.copy}"]`);
  if (!field) {
    return;
  }
  let copied = false;
  try {
    await navigator.clipboard.writeText(field.value);
    copied = true;
  } catch {
    // No clipboard API (a page served over plain http) or no permission: the older command.
    field.select();
    try { copied = document.execCommand("copy"); } catch { copied = false; }
  }
  if (!copied) {
    field.focus();
  }
  if (status) {
    status.textContent = copied ? "Copied" : "Selected: press Ctrl+C (⌘C on a Mac) to copy";
    status.dataset.state = copied ? "copied" : "selected";
  }
});

// Disclosure menus (<details data-menu>: the phone navigation, the account menu, the admin
// sections on a phone; issue 21, item 3) open and close without script. With it: Escape closes
// the open menu and puts focus back on its button; a click or focus outside a menu closes it;
// opening one closes the others. A menu's panel is the element after its <details>, so "inside"
// means inside their common parent.
function menuScope(menu) {
  return menu.parentElement || menu;
}
function closeMenus(keep) {
  document.querySelectorAll("details[data-menu][open]").forEach((menu) => {
    if (!keep || !menuScope(menu).contains(keep)) {
      menu.open = false;
    }
  });
}
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") {
    return;
  }
  const open = [...document.querySelectorAll("details[data-menu][open]")];
  const inner = open.filter((menu) => menuScope(menu).contains(document.activeElement)).pop() || open.pop();
  if (!inner) {
    return;
  }
  inner.open = false;
  const summary = inner.querySelector("summary");
  if (summary && summary.offsetParent !== null) {
    summary.focus();
  }
});
document.addEventListener("click", (event) => closeMenus(event.target));
document.addEventListener("focusin", (event) => closeMenus(event.target));
document.addEventListener("toggle", (event) => {
  if (event.target instanceof HTMLDetailsElement && event.target.matches("[data-menu]") && event.target.open) {
    closeMenus(event.target);
  }
}, true);

// An element marked data-return-to="<path>" (the Checkout success page once Stripe's webhook
// is applied; issue 21, item 7) goes to that page by itself after data-return-after seconds,
// whether it came with the page or in an htmx swap. Without script, a <noscript> meta refresh
// does the same.
function scheduleReturn(root) {
  const scope = root instanceof Element || root instanceof Document ? root : document;
  const found = scope.matches && scope.matches("[data-return-to]") ? [scope] : [];
  found.push(...scope.querySelectorAll("[data-return-to]"));
  found.forEach((element) => {
    if (element.dataset.returnScheduled || !element.dataset.returnTo.startsWith("/")) {
      return;
    }
    element.dataset.returnScheduled = "1";
    const seconds = Number(element.dataset.returnAfter || "3");
    setTimeout(() => {
      if (element.isConnected) {
        window.location.assign(element.dataset.returnTo);
      }
    }, seconds * 1000);
  });
}
scheduleReturn(document);
document.addEventListener("htmx:load", (event) => scheduleReturn(event.target));

// A swap that disables the focused control (the demo's button, once the quota is used up)
// would drop focus to <body>: it goes to the element marked data-focus-fallback="<that
// control's id>" instead (the button's result, which says what happened).
let focusedBeforeSwap = "";
document.addEventListener("htmx:beforeSwap", () => {
  focusedBeforeSwap = document.activeElement ? document.activeElement.id : "";
});
document.addEventListener("htmx:afterSettle", () => {
  const lost = focusedBeforeSwap;
  focusedBeforeSwap = "";
  if (!lost || (document.activeElement && document.activeElement !== document.body)) {
    return;
  }
  const fallback = document.querySelector(`[data-focus-fallback="${CSS.escape(lost)}"]`);
  if (fallback) {
    fallback.focus();
  }
});

// A chart's "Show as table" (<details data-keep-open>, templates/components/chart.html) stays
// open when htmx swaps in a fresher copy of its section (the dashboard's chart refreshes itself).
let chartTablesOpen = [];
document.addEventListener("htmx:beforeSwap", (event) => {
  chartTablesOpen = [...event.detail.target.querySelectorAll("details[data-keep-open][open]")]
    .map((details) => details.id);
});
document.addEventListener("htmx:afterSwap", () => {
  chartTablesOpen.forEach((id) => { document.getElementById(id)?.setAttribute("open", ""); });
  chartTablesOpen = [];
});
// Back to a page (htmx's copy of it, or the browser's page cache): every menu closed.
document.addEventListener("htmx:beforeHistorySave", () => closeMenus(null));
window.addEventListener("pageshow", (event) => {
  if (event.persisted) {
    closeMenus(null);
  }
});
