// Auto-refresh for the jobs dashboard: a checkbox whose state survives reloads
// (localStorage); while on, the live part of the page is re-fetched every 5 seconds.
"use strict";
{
    const KEY = "django_jobs.dashboard.autoRefresh";
    const INTERVAL_MS = 5000;
    let timer = null;

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

    async function refresh() {
        try {
            const response = await fetch(window.location.href, {
                credentials: "same-origin",
                headers: {"X-Requested-With": "XMLHttpRequest"},
            });
            if (response.ok) {
                const page = new DOMParser().parseFromString(await response.text(), "text/html");
                const fresh = page.getElementById("djj-live");
                const current = document.getElementById("djj-live");
                if (fresh && current) {
                    current.replaceWith(fresh);
                }
                const stamp = page.querySelector(".djj-refresh .djj-quiet");
                const shown = document.querySelector(".djj-refresh .djj-quiet");
                if (stamp && shown) {
                    shown.textContent = stamp.textContent;
                }
            }
        } finally {
            schedule();
        }
    }

    function schedule() {
        window.clearTimeout(timer);
        timer = stored() ? window.setTimeout(refresh, INTERVAL_MS) : null;
    }

    document.addEventListener("DOMContentLoaded", () => {
        const toggle = document.getElementById("djj-auto-refresh");
        if (!toggle) {
            return;
        }
        toggle.checked = stored();
        toggle.addEventListener("change", () => {
            store(toggle.checked);
            schedule();
        });
        schedule();
    });
}
