// The thank-you page of a donation still being confirmed: asks the page again every two
// seconds and puts its new status in place (an aria-live region, so screen readers hear it),
// instead of a <meta refresh> that reloads the whole page under the reader. Without script,
// the page's "Check again" link does the same by hand.
(function () {
  "use strict";
  var live = document.getElementById("donation-live");
  var tries = 0;
  if (!live) return;
  function pending(root) {
    var status = root.querySelector("#donation-status");
    return status && status.getAttribute("data-status") === "pending";
  }
  function check() {
    tries += 1;
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (answer) { return answer.ok ? answer.text() : Promise.reject(answer.status); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("donation-live");
        if (fresh && !pending(fresh)) {
          live.innerHTML = fresh.innerHTML;
        } else if (tries < 60) {
          window.setTimeout(check, 2000);
        }
      })
      .catch(function () { if (tries < 60) window.setTimeout(check, 5000); });
  }
  if (pending(live)) window.setTimeout(check, 2000);
})();
