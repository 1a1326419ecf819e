// Portal links: submit the confirm form at once, so a person clicking a link lands on their
// billing page, while link previews and scanners (which run no script) leave the link unused.
document.querySelector("form[data-autosubmit]")?.submit();
