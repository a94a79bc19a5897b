/* The management pages of m01.remote: what a script adds to pages that
   work without one. Served by the add-on (/remote/m01remote.js).

   - Relative times ("3 min ago") are kept up to date, counted from the
     server's clock (the page says what time it was made at).
   - A page marked data-live (the overview, the jobs list, the workers,
     a running job's page) fetches itself every few seconds and swaps in
     its parts marked data-part, while the tab is visible and the reader
     is not in the middle of something there (a dialog open, a form
     field focused, rows ticked or a field changed in a part); it stops
     once the page no longer asks for it.
   - A form or link marked data-confirm, which leads to a confirmation
     page, shows that page's form in a dialog instead.
   - A checkbox marked data-select-all selects every row of its form.
   - A select marked data-factory-select shows only the hint (marked
     data-factory-hint) of the factory chosen.
*/
(function () {
  'use strict';
  var root = document.documentElement;
  root.classList.add('js');
  // What the script's own requests say they are: the pages then keep
  // their flash messages for the page the reader sees next.
  var FETCHED = {'Accept': 'text/html', 'X-Requested-With': 'm01remote'};

  // Relative times, as m01.remote.views.formatting writes them.
  var UNITS = [[60, 1, 's', 's'], [3600, 60, 'min', 'min'],
               [86400, 3600, 'h', 'h'],
               [30 * 86400, 86400, 'day', 'days'],
               [365 * 86400, 30 * 86400, 'month', 'months'],
               [Infinity, 365 * 86400, 'year', 'years']];
  var serverNow = Date.parse(document.body.getAttribute('data-now') || '');
  var skew = isNaN(serverNow) ? 0 : serverNow - Date.now();

  function relative(value) {
    var seconds = (value - (Date.now() + skew)) / 1000;
    var distance = Math.abs(seconds);
    if (distance < 1) {
      return 'now';
    }
    for (var i = 0; i < UNITS.length; i++) {
      var count = Math.floor(distance / UNITS[i][1] + 0.5);
      if (count * UNITS[i][1] < UNITS[i][0]) {
        var text = count + ' ' + (count === 1 ? UNITS[i][2] : UNITS[i][3]);
        return seconds > 0 ? 'in ' + text : text + ' ago';
      }
    }
    return '';
  }

  // The server's clock now, as the pages write times: HH:MM:SS UTC.
  function clockNow() {
    var now = new Date(Date.now() + skew);
    function two(n) {
      return (n < 10 ? '0' : '') + n;
    }
    return two(now.getUTCHours()) + ':' + two(now.getUTCMinutes()) + ':'
      + two(now.getUTCSeconds()) + ' UTC';
  }

  function updateTimes(scope) {
    var times = (scope || document).querySelectorAll('time[data-rel]');
    for (var i = 0; i < times.length; i++) {
      var value = Date.parse(times[i].getAttribute('datetime'));
      if (!isNaN(value)) {
        times[i].textContent = relative(value);
      }
    }
  }
  window.setInterval(updateTimes, 5000);

  // Live parts.
  var live = document.querySelector('[data-live]');
  var liveStatus = document.getElementById('live-status');
  var liveToggle = document.getElementById('live-toggle');
  var paused = false;
  var timer = null;

  function say(text) {
    if (liveStatus) {
      liveStatus.textContent = text;
    }
  }

  function swap(fresh) {
    var parts = fresh.querySelectorAll('[data-part][id]');
    for (var i = 0; i < parts.length; i++) {
      var old = document.getElementById(parts[i].id);
      if (!old) {
        continue;
      }
      // Keep what the reader opened or closed.
      var opened = {};
      var details = old.querySelectorAll('details[id]');
      for (var j = 0; j < details.length; j++) {
        opened[details[j].id] = details[j].open;
      }
      var part = document.importNode(parts[i], true);
      var again = part.querySelectorAll('details[id]');
      for (var k = 0; k < again.length; k++) {
        if (again[k].id in opened) {
          again[k].open = opened[again[k].id];
        }
      }
      old.parentNode.replaceChild(part, old);
    }
    updateTimes();
  }

  // Whether an update would undo what the reader is doing.
  function changed(element) {
    if (element.type === 'checkbox' || element.type === 'radio') {
      return element.checked !== element.defaultChecked;
    }
    if (element.tagName === 'SELECT') {
      return Array.prototype.some.call(element.options, function (option) {
        return option.selected !== option.defaultSelected;
      });
    }
    return element.value !== element.defaultValue;
  }

  function held() {
    if (document.querySelector('dialog[open]')) {
      return true;
    }
    var active = document.activeElement;
    if (active && (active.form || /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName))) {
      return true;
    }
    var fields = document.querySelectorAll(
      '[data-part] input, [data-part] select, [data-part] textarea');
    return Array.prototype.some.call(fields, changed);
  }

  function schedule() {
    window.clearTimeout(timer);
    timer = null;
    if (!live || paused || document.hidden) {
      return;
    }
    var seconds = parseFloat(live.getAttribute('data-live')) || 5;
    timer = window.setTimeout(refresh, seconds * 1000);
  }

  function stop(text) {
    live = null;
    window.clearTimeout(timer);
    say(text);
    if (liveToggle) {
      liveToggle.hidden = true;
    }
  }

  function wait() {
    say('Waiting while you select or fill in something here; updates go '
        + 'on once you are done.');
    schedule();
  }

  function refresh() {
    if (!live) {
      return;
    }
    if (held()) {
      wait();
      return;
    }
    var url = window.location.href;
    fetch(url, {credentials: 'same-origin', cache: 'no-store',
                headers: FETCHED})
      .then(function (response) {
        if (!response.ok || response.url.split('#')[0] !== url.split('#')[0]) {
          throw new Error('status ' + response.status);
        }
        return response.text();
      })
      .then(function (text) {
        if (!live || paused || document.hidden) {
          return;
        }
        if (held()) {
          // Ticked or focused while the page was fetched.
          wait();
          return;
        }
        var fresh = new DOMParser().parseFromString(text, 'text/html');
        swap(fresh);
        var again = fresh.querySelector('[data-live]');
        if (!again) {
          stop(live.getAttribute('data-live-stopped')
               || 'Updated; this page no longer changes, so updates stopped.');
          return;
        }
        // The page says how often to look again (a queued job that
        // started is looked at more often).
        live.setAttribute('data-live', again.getAttribute('data-live'));
        say('Updated ' + clockNow() + '.');
        schedule();
      })
      .catch(function () {
        stop('Live updates stopped: the page could not be fetched. '
             + 'Reload it to try again.');
      });
  }

  if (live) {
    document.addEventListener('visibilitychange', function () {
      if (document.hidden) {
        window.clearTimeout(timer);
        say('Paused while the tab is hidden.');
      } else if (live && !paused) {
        refresh();
      }
    });
    if (liveToggle) {
      liveToggle.hidden = false;
      liveToggle.addEventListener('click', function () {
        paused = !paused;
        liveToggle.textContent = paused ? 'Resume updates' : 'Pause updates';
        if (paused) {
          window.clearTimeout(timer);
          say('Paused.');
        } else {
          refresh();
        }
      });
    }
    say('Updating every ' + live.getAttribute('data-live') + ' s while '
        + 'this tab is visible.');
    schedule();
  }

  // Confirmations in a dialog: the confirmation page's own form. The
  // button pressed may name the page (formaction) and add its value.
  function confirmUrl(form, button) {
    var data = new FormData(form);
    var action = form.action;
    if (button && button.name) {
      data.append(button.name, button.value);
    }
    if (button && button.hasAttribute('formaction')) {
      action = button.formAction;
    }
    var query = new URLSearchParams(data).toString();
    return action + (query ? '?' + query : '');
  }

  function showDialog(form, url) {
    fetch(url, {credentials: 'same-origin', cache: 'no-store',
                headers: FETCHED})
      .then(function (response) {
        return response.ok ? response.text() : null;
      })
      .then(function (text) {
        var page = text && new DOMParser().parseFromString(text, 'text/html');
        var content = page && page.querySelector('[data-confirm-form]');
        if (!content || typeof HTMLDialogElement === 'undefined') {
          window.location.assign(url);
          return;
        }
        var dialog = document.createElement('dialog');
        dialog.className = 'confirm';
        dialog.setAttribute('aria-labelledby', 'confirm-dialog-title');
        var title = document.createElement('h2');
        title.id = 'confirm-dialog-title';
        var heading = page.querySelector('h1');
        title.textContent = heading ? heading.textContent : 'Confirm';
        dialog.appendChild(title);
        dialog.appendChild(document.importNode(content, true));
        dialog.addEventListener('click', function (event) {
          if (event.target.closest('[data-confirm-cancel]')) {
            event.preventDefault();
            dialog.close();
          }
        });
        dialog.addEventListener('close', function () {
          dialog.remove();
        });
        document.body.appendChild(dialog);
        dialog.showModal();
      })
      .catch(function () {
        window.location.assign(url);
      });
  }

  document.addEventListener('click', function (event) {
    var link = event.target.closest && event.target.closest('a[data-confirm]');
    if (link && !event.ctrlKey && !event.metaKey && !event.shiftKey) {
      event.preventDefault();
      showDialog(link, link.href);
    }
  });

  document.addEventListener('submit', function (event) {
    var form = event.target;
    if (form.hasAttribute('data-confirm') && form.method.toLowerCase() === 'get') {
      event.preventDefault();
      showDialog(form, confirmUrl(form, event.submitter));
    }
  });

  // Selecting rows: their checkboxes belong to the form (its elements),
  // wherever they are on the page.
  function rows(form) {
    return Array.prototype.filter.call(form.elements, function (element) {
      return element.hasAttribute('data-row');
    });
  }

  function countSelected(form) {
    var boxes = rows(form);
    var chosen = 0;
    for (var i = 0; i < boxes.length; i++) {
      chosen += boxes[i].checked ? 1 : 0;
    }
    var counts = form.querySelectorAll('[data-selected-count]');
    for (var j = 0; j < counts.length; j++) {
      counts[j].textContent = chosen + ' selected';
    }
  }

  document.addEventListener('change', function (event) {
    var box = event.target;
    var form = box.form;
    if (!form) {
      return;
    }
    if (box.hasAttribute('data-select-all')) {
      var boxes = rows(form);
      for (var i = 0; i < boxes.length; i++) {
        boxes[i].checked = box.checked;
      }
    }
    if (box.hasAttribute('data-select-all') || box.hasAttribute('data-row')) {
      countSelected(form);
    }
  });
  // The add-job form: the chosen factory's hint only.
  function showHint(select) {
    var hints = document.querySelectorAll('[data-factory-hint]');
    // None chosen yet: every factory's.
    for (var i = 0; i < hints.length; i++) {
      hints[i].hidden = select.value !== '' && hints[i].getAttribute(
        'data-factory-hint') !== select.value;
    }
  }

  var factorySelect = document.querySelector('[data-factory-select]');
  if (factorySelect) {
    showHint(factorySelect);
    factorySelect.addEventListener('change', function () {
      showHint(factorySelect);
    });
  }
})();
