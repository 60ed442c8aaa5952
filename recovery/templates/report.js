document.querySelectorAll('table.sortable').forEach(function (table) {
  var body = table.tBodies[0];
  table.querySelectorAll('th').forEach(function (th, col) {
    th.tabIndex = 0;
    th.addEventListener('click', function () {
      var asc = th.getAttribute('aria-sort') !== 'ascending';
      table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute('data-sort') || a.cells[col].textContent.trim();
        var y = b.cells[col].getAttribute('data-sort') || b.cells[col].textContent.trim();
        var nx = Number(x), ny = Number(y);
        var c = (x !== '' && y !== '' && !isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
document.querySelectorAll('input.filter').forEach(function (input) {
  input.addEventListener('input', function () {
    var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    document.querySelectorAll(input.getAttribute('data-target')).forEach(function (row) {
      var text = row.textContent.toLowerCase() + ' ' + (row.getAttribute('data-full') || '').toLowerCase();
      row.hidden = !words.every(function (w) { return text.indexOf(w) >= 0; });
    });
  });
});
var query = (location.hash.match(/[#&]q=([^&]*)/) || [])[1];
if (query) {
  document.querySelectorAll('input.filter').forEach(function (input) {
    input.value = decodeURIComponent(query);
    input.dispatchEvent(new Event('input'));
  });
}
var sort = location.hash.match(/[#&]sort=([a-z]+):(\d+)(:desc)?/);
if (sort) {
  var th = document.querySelectorAll('#' + sort[1] + ' th')[Number(sort[2])];
  if (th) { th.click(); if (sort[3]) { th.click(); } }
}
document.querySelectorAll('button.copy').forEach(function (button) {
  button.addEventListener('click', function () {
    var text = button.getAttribute('data-copy');
    if (navigator.clipboard) { navigator.clipboard.writeText(text); }
    button.textContent = 'copied';
    setTimeout(function () { button.textContent = 'copy'; }, 1200);
  });
});
// Read from a copy (a download, another machine): a promote command names the folder this page is in,
// not where the audit wrote it, when the page is a local file. The page carries what it was written as.
var written = document.body.getAttribute('data-report-dir');
if (written && location.protocol === 'file:') {
  var quote = function (s) { return /^[\w@%+=:,.\/-]+$/.test(s) ? s : "'" + s.replace(/'/g, "'\"'\"'") + "'"; };
  var from = 'ckpt-rescue promote ' + quote(written) + ' ';
  var to = 'ckpt-rescue promote ' + quote(decodeURIComponent(location.pathname).replace(/\/[^\/]*$/, '')) + ' ';
  document.querySelectorAll('[data-copy], [data-command]').forEach(function (el) {
    ['data-copy', 'data-command', 'title'].forEach(function (name) {
      var value = el.getAttribute(name);
      if (value && value.indexOf(from) === 0) { el.setAttribute(name, to + value.slice(from.length)); }
    });
  });
}
