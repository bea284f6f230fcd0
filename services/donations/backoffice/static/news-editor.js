// The news editor's live previews: on input (debounced), the form goes to the preview route
// (its CSRF token with it) and the answer replaces the preview panes; the email's HTML is then
// loaded into its sandboxed iframe by the panes' own form. Without this script the editor's
// Preview button renders the same panes on the server.
(function () {
  "use strict";
  var form = document.getElementById("news-editor");
  var panes = document.getElementById("preview-panes");
  var status = document.getElementById("preview-status");
  if (!form || !panes || !window.fetch || !window.FormData) {
    return;
  }
  var timer = null;
  var latest = 0;

  function loadEmail() {
    var emailForm = document.getElementById("email-preview-form");
    if (emailForm) {
      emailForm.submit(); // its target is the sandboxed iframe, not this page
    }
  }

  function refresh() {
    var asked = ++latest;
    fetch(form.dataset.previewUrl, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin"
    }).then(function (answer) {
      if (!answer.ok) {
        throw new Error("preview " + answer.status);
      }
      return answer.text();
    }).then(function (html) {
      if (asked !== latest) {
        return; // a later preview is on its way
      }
      panes.innerHTML = html;
      loadEmail();
      status.textContent = status.dataset.updated;
    }).catch(function () {
      status.textContent = status.dataset.failed;
    });
  }

  form.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, 400);
  });
  loadEmail();
})();
