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
