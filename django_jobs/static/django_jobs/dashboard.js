// Live updates for the jobs dashboard: a checkbox whose state survives reloads
// (localStorage); while on, the page listens to the dashboard's event stream (Server-Sent
// Events) and swaps in the live part each time the queues change. Under ASGI the server
// pushes; under WSGI the stream answers at once and the browser asks again every 5 s.
// Without JavaScript the page is a plain page: reload it to see fresh figures.
"use strict";
{
    const KEY = "django_jobs.dashboard.autoRefresh";
    let source = null;

    function stored() {
        try {
            return window.localStorage.getItem(KEY) === "on";
        } catch (e) {
            return false;
        }
    }

    function store(on) {
        try {
            window.localStorage.setItem(KEY, on ? "on" : "off");
        } catch (e) {
            // Private mode may refuse storage: the toggle still works for this page.
        }
    }

    function show(message) {
        const data = JSON.parse(message.data);
        const page = new DOMParser().parseFromString(data.html, "text/html");
        const fresh = page.getElementById("djj-live");
        const current = document.getElementById("djj-live");
        if (fresh && current) {
            current.replaceWith(document.importNode(fresh, true));
        }
        const shown = document.querySelector(".djj-refresh .djj-quiet");
        if (shown) {
            shown.textContent = data.as_of;
        }
    }

    function listen(url, on) {
        if (source) {
            source.close();
            source = null;
        }
        if (on) {
            source = new EventSource(url);
            source.onmessage = show;
        }
    }

    document.addEventListener("DOMContentLoaded", () => {
        const toggle = document.getElementById("djj-auto-refresh");
        if (!toggle || !window.EventSource) {
            return;
        }
        const url = toggle.dataset.stream;
        toggle.checked = stored();
        toggle.addEventListener("change", () => {
            store(toggle.checked);
            listen(url, toggle.checked);
        });
        listen(url, toggle.checked);
    });
}
