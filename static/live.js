/* Live updates on a proposal's open page, with htmx's SSE extension (loaded only there). The page's event
   stream only names what changed; htmx then fetches the new comments (comments/_news.html) and puts each into
   its list out of band. Two things need a script:
   - a comment can arrive twice (the poster's own, already added by the answer to their form; or one sent again
     because it is recent), so a comment already on the page is not added again;
   - a reply goes into its thread when the thread is on the page; otherwise it is left out (it is not dropped
     into another list). */
(function () {
  "use strict";
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var detail = event.detail;
    var fragment = detail && detail.fragment;
    if (!fragment || !fragment.querySelectorAll) { return; }
    var parent = fragment.getAttribute ? fragment.getAttribute("data-reply-to") : null;
    if (parent) {
      var thread = document.getElementById("replies-" + parent);
      if (!thread) { detail.shouldSwap = false; return; }
      detail.target = thread;
    }
    var comments = fragment.querySelectorAll("article.comment[id]");
    for (var i = 0; i < comments.length; i++) {
      if (document.getElementById(comments[i].id)) { comments[i].remove(); }
    }
  });
})();
