// The gallery's small behaviours: reveal NSFW images on request, copy the /imagine line,
// and load older images as the reader nears the end (the "Older images" link without JS).
"use strict";

document.addEventListener("click", (event) => {
  const reveal = event.target.closest(".reveal");
  if (reveal) {
    reveal.closest(".nsfw").classList.add("revealed");
    return;
  }
  const copy = event.target.closest(".copy");
  if (copy) {
    const text = document.getElementById(copy.dataset.copy).textContent;
    navigator.clipboard.writeText(text).then(() => { copy.textContent = "Copied"; }, () => {});
  }
});

function watchMore() {
  const more = document.querySelector(".grid .more");
  if (!more || !("IntersectionObserver" in window)) return;
  const observer = new IntersectionObserver(async (entries) => {
    if (!entries.some((e) => e.isIntersecting)) return;
    observer.disconnect();
    const url = new URL(more.dataset.next, window.location.href);
    url.searchParams.set("partial", "1");
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) return;
    more.insertAdjacentHTML("afterend", await response.text());
    more.remove();
    watchMore();
  }, { rootMargin: "400px" });
  observer.observe(more);
}

document.addEventListener("DOMContentLoaded", watchMore);
