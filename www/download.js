// www/download.js — the one way the page and the widget hand a file to the person: a Blob saved
// under `name` through a temporary object URL (revoked once the browser has taken it).

export function download(blob, name) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a); // some browsers only follow links that are in the document
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}
