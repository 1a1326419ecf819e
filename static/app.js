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
