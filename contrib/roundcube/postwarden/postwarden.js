/*
 * postwarden.js - the compose window's lock and key icons, one pair per recipient.
 *
 * Every half second the recipient fields (To, Cc, Bcc) are read; addresses not asked
 * about yet are sent to Roundcube (plugin.postwarden-status), which asks postwarden for
 * what would happen to each (a short cache on postwarden's side keeps this cheap), and the
 * answers are kept here for the rest of the window's life; one postwarden could not
 * finish in time comes back pending and is asked about again two seconds later. Each recipient box of the
 * Elastic skin gets the icons; other skins get a line of icons under the field. The
 * reason is each icon's title (shown on hover) and its aria-label (read by screen readers).
 */
(function () {
  'use strict';

  var FIELDS = ['_to', '_cc', '_bcc'];
  var ADDRESS = /[^\s<>,;:"()]+@[^\s<>,;:"()]+/g;
  var MAX = 100;
  var RETRY_PENDING = 2000;  // ms before asking again about a pending address
  var known = {};      // address -> {transport, reason, key} once answered
  var asked = {};      // address -> true while a request for it is out
  var failure = null;  // the last error text, shown as the title of unknown icons

  function label(name) {
    return rcmail.gettext(name, 'postwarden');
  }

  function addresses_in(text) {
    var m = (text || '').match(ADDRESS) || [];
    return $.map(m, function (a) { return a.toLowerCase(); });
  }

  function current() {
    var all = [];
    $.each(FIELDS, function (i, id) {
      $.each(addresses_in($('#' + id).val()), function (j, a) {
        if ($.inArray(a, all) < 0) all.push(a);
      });
    });
    return all;
  }

  function lock_of(e) {
    if (!e) return {state: 'unknown', text: failure || label('lockunknown')};
    if (e.pending) return {state: 'pending', text: label('lockpending')};
    var names = {dane: 'lockdane', tls: 'locktls', stop: 'lockstop', plaintext: 'lockplain'};
    var head = label(names[e.transport] || 'lockunknown');
    return {state: e.transport, text: e.reason ? head + ': ' + e.reason : head};
  }

  function key_of(e) {
    if (!e) return {state: 'unknown', text: failure || label('keyunknown')};
    if (e.pending && !e.key) return {state: 'pending', text: label('keypending')};
    if (!e.key) return {state: 'none', text: label('keynone')};
    var k = e.key, what = (k.type === 'smime' ? 'S/MIME' : 'OpenPGP');
    var detail = [k.source, k.trust].filter(function (x) { return x; }).join(', ');
    return {state: 'found', text: label('keyfound') + ': ' + what + (detail ? ' (' + detail + ')' : '')
      + (k.fingerprint ? ' ' + k.fingerprint : '')};
  }

  function icon(kind, info) {
    return $('<span>').attr({
      'class': 'postwarden-' + kind + ' postwarden-' + kind + '-' + info.state,
      'data-state': info.state, title: info.text, 'aria-label': info.text, role: 'img'
    });
  }

  function icons(address) {
    var e = known[address];
    return $('<span class="postwarden-icons">').attr('data-address', address)
      .append(icon('lock', lock_of(e)), icon('key', key_of(e)));
  }

  // A signature of what an icon pair shows, so unchanged ones are left alone.
  function stamp(address) {
    var e = known[address];
    return address + '|' + (e ? e.transport + '|' + (e.key ? e.key.fingerprint : '-') + '|' + !!e.pending
      : failure || '?');
  }

  function box_address(li) {
    var m = addresses_in($(li).attr('title') || '').concat(addresses_in($(li).text()));
    return m.length ? m[0] : null;
  }

  function decorate() {
    var boxes = $('ul.recipient-input li.recipient');
    boxes.each(function () {
      var a = box_address(this), have = $(this).children('.postwarden-icons');
      if (!a) return;
      if (have.length && have.attr('data-stamp') === stamp(a)) return;
      have.remove();
      icons(a).attr('data-stamp', stamp(a)).insertBefore($(this).children('a.button').first());
    });
    if ($('ul.recipient-input').length) return;
    // other skins: one line of icons under each field
    $.each(FIELDS, function (i, id) {
      var field = $('#' + id), line = $('#postwarden-line' + id);
      if (!field.length) return;
      if (!line.length) line = $('<div class="postwarden-line">').attr('id', 'postwarden-line' + id).insertAfter(field);
      var want = $.map(addresses_in(field.val()), stamp).join(' ');
      if (line.attr('data-stamp') === want) return;
      line.empty().attr('data-stamp', want);
      $.each(addresses_in(field.val()), function (j, a) {
        line.append($('<span class="postwarden-address">').text(a), icons(a));
      });
    });
  }

  function tick() {
    var now = Date.now();
    var todo = $.grep(current(), function (a) {
      var e = known[a];
      return !asked[a] && (!e || (e.pending && now - e.at >= RETRY_PENDING));
    }).slice(0, MAX);
    if (todo.length) {
      $.each(todo, function (i, a) { asked[a] = true; });
      rcmail.http_post('plugin.postwarden-status', {_recipients: JSON.stringify(todo)}, false);
    }
    decorate();
  }

  function answered(data) {
    if (data && data.error) {
      failure = label('unreachable') + ': ' + data.error;
      asked = {};       // try again at the next change
    }
    else {
      failure = null;
      $.each((data && data.recipients) || [], function (i, e) {
        e.at = Date.now();
        known[e.address] = e;
        delete asked[e.address];
      });
    }
    decorate();
    $(document.body).attr('data-postwarden-answers', (+$(document.body).attr('data-postwarden-answers') || 0) + 1);
  }

  if (window.rcmail) {
    rcmail.addEventListener('init', function () {
      if (!rcmail.env.postwarden_compose) return;
      rcmail.addEventListener('plugin.postwarden_status', answered);
      tick();
      setInterval(tick, 500);
    });
  }
})();
