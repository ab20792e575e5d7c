/* app.js - the settings page's behaviour: sign-in, the guarantee, held messages, keys,
 * the move from another provider and the public certificate list, all through the account
 * API under /v1/ (docs/account.md). No framework and no build step: plain DOM calls.
 *
 * The session is the HttpOnly cookie the API sets; changes carry the CSRF token the
 * sign-in answered (after a reload, GET /v1/session answers it again; it is kept in
 * memory only). Texts come from i18n/LANG.json; the language
 * is the one chosen with the switch, else the browser's first of English and German. */
"use strict";

(function () {
	const LANGS = ["en", "de"];
	const POLL_MS = 1000;          /* migration progress: the node writes it 4 times a second */
	let texts = {};
	let lang = "en";
	let csrf = "";
	let migJob = null;
	let migTimer = null;
	let migLastSaid = "";
	const KEYS_RECHECK_MS = 3000;
	const KEYS_RECHECK_MAX = 40;
	let keysTimer = null;
	let keysTries = 0;
	let keysSeq = 0;		/* the newest list request (loadKeys) */

	const $ = (id) => document.getElementById(id);

	/* t(KEY, {name: value}) - the text in the current language, {name} filled in. */
	function t(key, vars) {
		let s = Object.prototype.hasOwnProperty.call(texts, key) ? texts[key] : key;
		for (const k in vars || {})
			s = s.split("{" + k + "}").join(String(vars[k]));
		return s;
	}

	/* The language chosen with the switch, else the browser's first of ours; "" when
	 * neither says (then the account's language decides after sign-in, else English). */
	function pickLanguage() {
		const chosen = localStorage.getItem("pw_lang");
		if (LANGS.includes(chosen))
			return chosen;
		for (const l of navigator.languages || [navigator.language || ""]) {
			const base = (String(l).toLowerCase().match(/^[a-z]+/) || [""])[0];
			if (LANGS.includes(base))
				return base;
		}
		return "";
	}

	async function loadLanguage(l) {
		const r = await fetch("i18n/" + l + ".json", {credentials: "same-origin"});
		if (!r.ok)
			throw new Error("i18n " + l + ": " + r.status);
		texts = await r.json();
		lang = l;
		document.documentElement.lang = l;
		$("lang").value = l;
		for (const el of document.querySelectorAll("[data-i18n]"))
			el.textContent = t(el.dataset.i18n);
		for (const el of document.querySelectorAll("[data-i18n-label]"))
			el.setAttribute("aria-label", t(el.dataset.i18nLabel));
		document.title = t("title");
	}

	function say(msg) {
		$("error").textContent = "";
		$("status").textContent = msg;
	}

	function fail(msg) {
		$("status").textContent = "";
		$("error").textContent = msg;
	}

	/* api(method, path, body) - the parsed JSON answer; throws Error(text to show). */
	async function api(method, path, body) {
		const opt = {method: method, credentials: "same-origin", headers: {}};
		if (method !== "GET")
			opt.headers["X-CSRF-Token"] = csrf;
		if (body !== undefined) {
			opt.headers["Content-Type"] = "application/json";
			opt.body = JSON.stringify(body);
		}
		let r;
		try {
			r = await fetch("v1/" + path, opt);
		} catch (e) {
			throw new Error(t("error.network"));
		}
		let data = {};
		try {
			data = await r.json();
		} catch (e) {
			data = {};
		}
		if (r.status === 401 && !path.startsWith("session")) {
			signedOut();
			throw new Error(t("error.session"));
		}
		if (!r.ok)
			throw new Error(errorText(data) || (r.status + " " + r.statusText));
		return data;
	}

	/* An error answer in the page's language: the text for its code ({error} in it is the
	 * server's English detail, such as why a key was refused), else the server's text. */
	function errorText(data) {
		const key = "error.code." + data.code;
		if (typeof data.code === "string" && Object.prototype.hasOwnProperty.call(texts, key))
			return t(key, {error: data.error || ""});
		return data.error;
	}

	function fmtTime(unix) {
		const d = typeof unix === "number" ? new Date(unix * 1000) : new Date(unix);
		if (isNaN(d.getTime()))
			return String(unix);
		return new Intl.DateTimeFormat(lang, {dateStyle: "medium", timeStyle: "short"}).format(d);
	}

	/* el("li", {class: "x"}, child, "text", ...) */
	function el(tag, attrs, ...kids) {
		const e = document.createElement(tag);
		for (const k in attrs || {})
			e.setAttribute(k, attrs[k]);
		for (const c of kids)
			e.append(c);
		return e;
	}

	/* ---- session ---------------------------------------------------------------- */

	function signedIn(who) {
		$("who-address").textContent = who.address;
		$("who").hidden = false;
		$("signin").hidden = true;
		$("account").hidden = false;
		for (const li of document.querySelectorAll(".needs-session"))
			li.hidden = false;
	}

	function signedOut() {
		csrf = "";
		stopPolling();
		migJob = null;
		if (keysTimer)
			clearTimeout(keysTimer);
		keysTimer = null;
		keysSeq++;	/* a list still on its way is not shown after sign-out */
		showSignIn();
	}

	function showSignIn() {
		$("who").hidden = true;
		$("signin").hidden = false;
		$("account").hidden = true;
		for (const li of document.querySelectorAll(".needs-session"))
			li.hidden = true;
	}

	async function onSignIn(ev) {
		ev.preventDefault();
		say(t("working"));
		try {
			const who = await api("POST", "session", {
				address: $("signin-address").value.trim(),
				password: $("signin-password").value,
			});
			csrf = who.csrf;
			$("signin-password").value = "";
			if (!pickLanguage() && LANGS.includes(who.language) && who.language !== lang)
				await loadLanguage(who.language);
			signedIn(who);
			say(t("signin.done"));
			await loadAccount();
			$("guarantee-h").setAttribute("tabindex", "-1");
			$("guarantee-h").focus();
		} catch (e) {
			fail(e.message);
			$("signin-password").focus();
		}
	}

	async function onSignOut() {
		try {
			await api("DELETE", "session");
		} catch (e) { /* signed out here either way */ }
		signedOut();
		say(t("signed_out"));
		$("signin-address").focus();
	}

	/* ---- guarantee ----------------------------------------------------------- */

	/* "Off for a while" keeps the setting enabled but not active until off_until: the
	 * switch shows whether the guarantee holds now. */
	function showGuarantee(g) {
		const on = g.active === undefined ? !!g.enabled : !!g.active;
		$("guarantee-switch").checked = on;
		let s = on ? t("guarantee.state_on") : t("guarantee.state_off");
		if (!on && g.off_until)
			s = t("guarantee.state_until", {time: fmtTime(g.off_until)});
		$("guarantee-state").textContent = s;
	}

	async function setGuarantee(body) {
		try {
			showGuarantee(await api("PUT", "guarantee", body));
			say(t("saved"));
		} catch (e) {
			fail(e.message);
		}
		await loadGuarantee();
	}

	async function loadGuarantee() {
		try {
			showGuarantee(await api("GET", "guarantee"));
		} catch (e) {
			fail(e.message);
		}
	}

	/* ---- held messages ------------------------------------------------------- */

	function heldItem(m) {
		const subject = m.subject || t("held.no_subject");
		const why = el("ul", {class: "reasons"});
		for (const r of m.recipients || [])
			why.append(el("li", {}, el("span", {class: "addr"}, r.address), ": ", r.reason || ""));
		const btn = el("button", {type: "button", class: "release",
		                          "aria-label": t("held.release_label", {subject: subject})},
		               t("held.release"));
		btn.addEventListener("click", () => release("held/" + encodeURIComponent(m.id) + "/release",
		                                             t("held.released")));
		return el("li", {"data-id": m.id},
		          el("h3", {}, subject),
		          el("p", {}, t("held.date") + ": " + fmtTime(m.date)),
		          el("p", {}, t("held.why") + ":"), why, btn);
	}

	async function loadHeld() {
		try {
			const d = await api("GET", "held");
			const list = $("held-list");
			list.replaceChildren(...(d.messages || []).map(heldItem));
			$("held-empty").hidden = list.children.length > 0;
			$("held-release-all").hidden = list.children.length === 0;
		} catch (e) {
			fail(e.message);
		}
	}

	async function release(path, done) {
		try {
			await api("POST", path, {});
			say(done);
		} catch (e) {
			fail(e.message);
		}
		await loadHeld();
		$("held-h").setAttribute("tabindex", "-1");
		$("held-h").focus();
	}

	/* ---- keys ---------------------------------------------------------------- */

	function publishedItem(p) {
		if (p.kind === "dns")
			return el("li", {}, t("keys.dns", {name: p.name}), " (",
			          el("span", {class: p.validates ? "ok" : "bad"},
			             p.validates ? t("keys.validates") : t("keys.not_validates")), ")");
		/* Only an https URL becomes a link: the page makes no javascript: or data: links. */
		const a = /^https:\/\//.test(p.url || "") ? el("a", {href: p.url}, p.url)
		                                            : el("span", {}, String(p.url));
		return el("li", {}, t("keys.wkd", {url: ""}), a);
	}

	function keyItem(k) {
		const pub = el("ul", {class: "published"}, ...(k.published || []).map(publishedItem));
		if (!(k.published || []).length)
			pub.append(el("li", {}, t("keys.not_published")));
		const btn = el("button", {type: "button", class: "remove",
		                          "aria-label": t("keys.remove_label", {fingerprint: k.fingerprint})},
		               t("keys.remove"));
		btn.addEventListener("click", () => removeKey(k.id));
		return el("li", {"data-id": k.id},
		          el("h3", {}, k.type === "smime" ? "S/MIME" : "OpenPGP"),
		          el("p", {}, t("keys.fingerprint") + ": ", el("code", {}, k.fingerprint)),
		          el("p", {}, t("keys.addresses") + ": " + (k.addresses || []).join(", ")),
		          el("p", {}, t("keys.published") + ":"), pub, btn);
	}

	/* A key just uploaded reaches DNS a moment later: while one of its names does not
	 * validate yet, the list is asked again (for at most KEYS_RECHECK_MAX tries). Only the
	 * newest answer is shown: an older one still on its way would bring back a removed key.
	 * True when the list is shown. */
	async function loadKeys() {
		const seq = ++keysSeq;
		if (keysTimer)
			clearTimeout(keysTimer);
		keysTimer = null;
		try {
			const d = await api("GET", "keys");
			if (seq !== keysSeq)
				return true;
			$("keys-list").replaceChildren(...(d.keys || []).map(keyItem));
			$("keys-empty").hidden = $("keys-list").children.length > 0;
			const waiting = (d.keys || []).some((k) => (k.published || []).some(
				(p) => p.kind === "dns" && !p.validates));
			if (waiting && keysTries < KEYS_RECHECK_MAX && !$("account").hidden) {
				keysTries++;
				keysTimer = setTimeout(loadKeys, KEYS_RECHECK_MS);
			}
			return true;
		} catch (e) {
			fail(e.message);
			return false;
		}
	}

	async function onKeyUpload(ev) {
		ev.preventDefault();
		let text = $("key-text").value.trim();
		const f = $("key-file").files[0];
		if (!text && f)
			text = await f.text();
		if (!text) {
			fail(t("keys.need_text"));
			$("key-text").focus();
			return;
		}
		try {
			await api("POST", "keys", {key: text});
		} catch (e) {
			fail(e.message);
			await loadKeys();
			return;
		}
		keysTries = 0;
		$("key-text").value = "";
		$("key-file").value = "";
		/* said once the list shows it, so that what is announced is on the screen */
		if (await loadKeys())
			say(t("keys.uploaded"));
	}

	async function removeKey(id) {
		try {
			await api("DELETE", "keys/" + encodeURIComponent(id));
		} catch (e) {
			fail(e.message);
			await loadKeys();
			return;
		}
		if (await loadKeys())
			say(t("keys.removed"));
		$("keys-h").setAttribute("tabindex", "-1");
		$("keys-h").focus();
	}

	/* ---- move to us ------------------------------------------------------------ */

	function showAdvice() {
		const p = $("mig-preset").value;
		$("mig-advice").textContent = t("mig.advice." + p);
		$("mig-server-row").hidden = p !== "other";
	}

	/* The source of the job: a preset's name, or a URL made from what was typed. */
	function migSource() {
		const p = $("mig-preset").value;
		if (p !== "other")
			return p;
		const s = $("mig-server").value.trim();
		if (!s)
			return "";
		return s.includes("://") ? s : "imaps://" + s;
	}

	function percentOf(j) {
		if (j.state === "done")
			return 100;
		if (j.messages_total > 0)
			return Math.floor(100 * j.messages_done / j.messages_total);
		if (j.folders_total > 0)
			return Math.floor(100 * j.folders_done / j.folders_total);
		return 0;
	}

	function showJob(j) {
		const pc = percentOf(j);
		$("mig-progress").hidden = false;
		$("mig-bar").value = pc;
		$("mig-bar").setAttribute("aria-valuetext", pc + "%");
		let s = t("mig.state." + j.state);
		if (j.state === "running")
			s = t("mig.running", {percent: pc, done: j.messages_done || 0,
			                      total: j.messages_total || 0});
		if (j.error)
			s += " " + j.error;
		$("mig-text").textContent = s;
		$("mig-cancel").hidden = j.state !== "running";
		/* Screen readers hear a state change and every tenth percent, not every poll. */
		const said = j.state === "running" ? t("mig.live", {percent: pc - pc % 10}) : s;
		if (said !== migLastSaid) {
			migLastSaid = said;
			$("mig-live").textContent = said;
		}
	}

	function stopPolling() {
		if (migTimer)
			clearTimeout(migTimer);
		migTimer = null;
	}

	async function poll() {
		migTimer = null;
		if (migJob === null)
			return;
		try {
			const j = await api("GET", "migrations/" + encodeURIComponent(migJob));
			showJob(j);
			if (j.state === "running")
				migTimer = setTimeout(poll, POLL_MS);
		} catch (e) {
			fail(e.message);
		}
	}

	function watch(id) {
		stopPolling();
		migJob = id;
		migLastSaid = "";
		poll();
	}

	async function onMigStart(ev) {
		ev.preventDefault();
		const source = migSource();
		if (!source) {
			fail(t("mig.need_server"));
			$("mig-server").focus();
			return;
		}
		const body = {kind: "mail", source: source, source_user: $("mig-user").value.trim(),
		              source_password: $("mig-password").value};
		if ($("mig-own").value)
			body.destination_password = $("mig-own").value;
		try {
			const r = await api("POST", "migrations", body);
			$("mig-password").value = "";
			$("mig-own").value = "";
			say(t("mig.state.running"));
			watch(r.id);
		} catch (e) {
			fail(e.message);
		}
	}

	async function onMigCancel() {
		try {
			await api("DELETE", "migrations/" + encodeURIComponent(migJob));
			say(t("mig.cancelling"));
			stopPolling();
			migTimer = setTimeout(poll, POLL_MS);
		} catch (e) {
			fail(e.message);
		}
	}

	/* A mail job still running from an earlier visit is shown again (the newest first). */
	async function loadMigrations() {
		try {
			const d = await api("GET", "migrations");
			const job = (d.jobs || []).find((j) => j.state === "running" &&
			                                       (j.kind || "mail") === "mail");
			if (job && migJob === null)
				watch(job.id);
		} catch (e) {
			fail(e.message);
		}
	}

	/* ---- certificates (public) -------------------------------------------------- */

	async function loadCerts() {
		const body = $("certs-body");
		try {
			const d = await api("GET", "certificates");
			const rows = (d.certificates || []).map((c) => el("tr", {},
				el("th", {scope: "row"}, c.name),
				el("td", {"data-label": t("certs.sha256")}, el("code", {}, c.sha256)),
				el("td", {"data-label": t("certs.spki")}, el("code", {}, c.spki_sha256)),
				el("td", {"data-label": t("certs.until")}, fmtTime(c.not_after))));
			if (!rows.length)
				rows.push(el("tr", {}, el("td", {colspan: "4"}, t("certs.none"))));
			body.replaceChildren(...rows);
		} catch (e) {
			body.replaceChildren(el("tr", {}, el("td", {colspan: "4"}, e.message)));
		}
	}

	async function loadAccount() {
		await Promise.all([loadGuarantee(), loadHeld(), loadKeys(), loadMigrations()]);
	}

	async function start() {
		showSignIn();
		await loadLanguage(pickLanguage() || "en");
		showAdvice();
		$("lang").addEventListener("change", async () => {
			localStorage.setItem("pw_lang", $("lang").value);
			await loadLanguage($("lang").value);
			showAdvice();
			if (!$("account").hidden)
				await loadAccount();
			await loadCerts();
		});
		$("signin-form").addEventListener("submit", onSignIn);
		$("signout").addEventListener("click", onSignOut);
		$("guarantee-switch").addEventListener("change", () =>
			setGuarantee({enabled: $("guarantee-switch").checked}));
		$("guarantee-off-hour").addEventListener("click", () =>
			setGuarantee({enabled: false, for: 3600}));
		$("guarantee-off-day").addEventListener("click", () =>
			setGuarantee({enabled: false, for: 86400}));
		$("held-release-all").addEventListener("click", () =>
			release("held/release", t("held.released_all")));
		$("key-form").addEventListener("submit", onKeyUpload);
		$("mig-preset").addEventListener("change", showAdvice);
		$("mig-form").addEventListener("submit", onMigStart);
		$("mig-cancel").addEventListener("click", onMigCancel);
		loadCerts();
		/* A reload while signed in: the cookie still holds, and GET /v1/session gives
		 * the session's CSRF token again (a GET needs none). 401: not signed in. */
		try {
			const who = await api("GET", "session");
			csrf = who.csrf;
			signedIn(who);
			await loadAccount();
		} catch (e) {
			showSignIn();
		}
		document.body.dataset.ready = "1";
	}

	document.addEventListener("DOMContentLoaded", () => {
		start().catch((e) => fail(e.message));
	});
})();
