// Click a header to sort its table; click again to reverse. A cell's data-v holds its numeric
// value ('' = missing, sorted last either way); cells without data-v sort by their text. The
// caption (class "order") says how the rows are sorted.
function mvsearchSort(th) {
  var table = th.closest('table'), body = table.tBodies[0];
  var i = Array.prototype.indexOf.call(th.parentNode.children, th);
  var asc = th.getAttribute('data-dir') !== 'asc';
  th.parentNode.querySelectorAll('th').forEach(function (h) { h.removeAttribute('data-dir'); });
  th.setAttribute('data-dir', asc ? 'asc' : 'desc');
  function key(row) {
    var c = row.children[i], v = c.getAttribute('data-v');
    return v === null ? c.textContent : (v === '' ? null : parseFloat(v));
  }
  Array.from(body.rows).sort(function (a, b) {
    var x = key(a), y = key(b);
    if (x === null) return y === null ? 0 : 1;
    if (y === null) return -1;
    var d = (typeof x === 'number' && typeof y === 'number') ? x - y : String(x).localeCompare(String(y));
    return asc ? d : -d;
  }).forEach(function (r) { body.appendChild(r); });
  var order = table.querySelector('caption .order');
  if (order) order.textContent = th.textContent + (asc ? ', ascending' : ', descending');
}
document.querySelectorAll('table.sortable th').forEach(function (th) {
  th.addEventListener('click', function () { mvsearchSort(th); });
});
