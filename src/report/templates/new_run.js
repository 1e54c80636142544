// The new-request page: posts the request to /api/runs, then follows the run's progress
// through the server-sent events the answer points at, a line per event, until `done`
// links to the run's page. The form's data-state (idle, busy, done, error) says where
// it is, for people and for tests.
(function () {
  'use strict';

  var form = document.getElementById('new-run');
  if (!form) {
    return;
  }
  var status = document.getElementById('new-run-status');
  var progress = document.getElementById('progress');
  var pageLink = document.getElementById('new-run-page');
  var submit = document.getElementById('new-run-submit');
  var source = null;

  function setState(state, text) {
    form.setAttribute('data-state', state);
    if (text !== undefined) {
      status.textContent = text;
    }
  }

  function item(kind, text, ok) {
    var li = document.createElement('li');
    li.setAttribute('data-event', kind);
    if (ok === false) {
      li.setAttribute('data-ok', 'false');
    }
    li.textContent = text;
    progress.appendChild(li);
  }

  function parse(event) {
    try {
      return JSON.parse(event.data) || {};
    } catch (e) {
      return {};
    }
  }

  function link(href, text) {
    pageLink.textContent = '';
    var a = document.createElement('a');
    a.href = href;
    a.textContent = text;
    pageLink.appendChild(a);
  }

  function follow(events, page) {
    source = new EventSource(events);
    var finished = false;
    source.addEventListener('started', function (event) {
      var d = parse(event);
      item('started', d.stage + ' started' + (d.round ? ' (round ' + d.round + ')' : ''));
    });
    source.addEventListener('finished', function (event) {
      var d = parse(event);
      var ms = typeof d.ms === 'number' ? ' in ' + d.ms.toFixed(1) + ' ms' : '';
      item('finished', d.stage + (d.ok === false ? ' failed' : ' done') + ms + (d.detail ? ': ' + d.detail : ''), d.ok);
    });
    source.addEventListener('progress', function (event) {
      var d = parse(event);
      item('progress', d.stage + ': ' + (d.detail || ''));
    });
    source.addEventListener('note', function (event) {
      item('note', parse(event).text || '');
    });
    source.addEventListener('done', function (event) {
      var d = parse(event);
      finished = true;
      source.close();
      item('done', 'done: ' + (d.status || 'finished'), d.status === undefined || d.status === 'ok');
      link(d.page || page, 'Open the run’s page');
      setState('done', 'Finished: ' + (d.status || 'done') + '.');
      submit.disabled = false;
    });
    source.onerror = function () {
      if (finished) {
        return;
      }
      // The browser retries on its own while the connection may come back; once it
      // gives up the run goes on without us, and its page will show how it ended.
      if (source.readyState === EventSource.CLOSED) {
        link(page, 'Open the run’s page');
        setState('error', 'Lost the connection to the run’s progress; the run goes on.');
        submit.disabled = false;
      }
    };
  }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    var request = document.getElementById('new-run-request').value.trim();
    var db = document.getElementById('new-run-db').value.trim();
    if (!request) {
      setState('error', 'Write a request first.');
      return;
    }
    if (source) {
      source.close();
      source = null;
    }
    progress.textContent = '';
    pageLink.textContent = '';
    submit.disabled = true;
    setState('busy', 'Starting…');
    fetch('/api/runs', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ request: request, db: db || null })
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (body) {
        if (!response.ok || !body || !body.events) {
          var message = body && body.message ? (body.kind ? body.kind + ': ' : '') + body.message
            : 'the server answered ' + response.status;
          throw new Error(message);
        }
        return body;
      });
    }).then(function (body) {
      setState('busy', 'Running ' + body.id + '…');
      link(body.page, 'The run’s page');
      follow(body.events, body.page);
    }).catch(function (error) {
      submit.disabled = false;
      setState('error', 'Could not start the run: ' + (error && error.message || error));
    });
  });
})();
