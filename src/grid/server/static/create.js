// grid's "new version" panel: upload files or a folder, or import an archive URL / S3 prefix.
//
// An upload is a tar stream built here from the picked files (sorted by path, so the same
// files always make the same bytes), cut into the parts the server asks for and sent with
// PUT, three at a time, each retried after a dropped connection: to the server, or straight
// to the object store where its CORS rules let this page (the server then gives a presigned
// URL per part, as it gives the CLI for packs). The server names the upload
// by a fingerprint of the paths, sizes and times: picking the same files again (after a
// reload) finds the parts already stored, and only the rest is sent. Then the server stores
// it as a version through the same import as an archive URL (the same dedup as the CLI).
(function () {
  "use strict";
  var panel = document.getElementById("create");
  if (!panel) { return; }
  var CSRF = document.querySelector('meta[name="csrf-token"]').content;
  var BIG = 1000 * 1000 * 1000;
  var SAVED = "grid-upload";
  var $ = function (id) { return document.getElementById(id); };
  var picked = [];

  function human(n) {
    var units = ["B", "KB", "MB", "GB", "TB"], i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return (i ? n.toFixed(1) : n.toFixed(0)) + " " + units[i];
  }

  function say(id, text, bad) {
    var el = $(id);
    el.textContent = text;
    el.classList.toggle("error", !!bad);
  }

  function target() {
    var field = $("ds-name"), raw = (field.value || field.placeholder || "").trim();
    if (!raw) { return null; }
    var cut = raw.indexOf("/");
    return cut < 0 ? { owner: panel.dataset.owner, name: raw }
                   : { owner: raw.slice(0, cut), name: raw.slice(cut + 1) };
  }

  function api(where) {
    return "/v1/datastores/" + encodeURIComponent(where.owner) + "/" + encodeURIComponent(where.name);
  }

  // -- the tar stream --------------------------------------------------------------------
  var enc = new TextEncoder();

  function octal(n, width) {
    var s = n.toString(8);
    while (s.length < width - 1) { s = "0" + s; }
    return s + "\0";
  }

  function put(block, text, at) { block.set(enc.encode(text), at); }

  function header(name, size, mtime, type) {
    var b = new Uint8Array(512);
    var nameBytes = enc.encode(name);
    b.set(nameBytes.length <= 100 ? nameBytes : enc.encode("pax-header"), 0);
    put(b, octal(0o644, 8), 100);
    put(b, octal(0, 8), 108);
    put(b, octal(0, 8), 116);
    put(b, octal(size, 12), 124);
    put(b, octal(mtime, 12), 136);
    put(b, "        ", 148);
    put(b, type, 156);
    put(b, "ustar\0" + "00", 257);
    var sum = 0;
    for (var i = 0; i < 512; i++) { sum += b[i]; }
    put(b, octal(sum, 7) + " ", 148);
    return b;
  }

  function paxRecord(key, value) {
    var body = " " + key + "=" + value + "\n";
    var len = enc.encode(body).length, total = len + String(len).length;
    if (String(total).length !== String(len).length) { total += 1; }
    return total + body;
  }

  function pad(n) { return (512 - (n % 512)) % 512; }

  // The stream as pieces: [offset, length, make()] where make gives a Blob part.
  function layout(files) {
    var pieces = [], at = 0;
    function add(length, make) { pieces.push([at, length, make]); at += length; }
    files.forEach(function (f) {
      var mtime = Math.floor(f.file.lastModified / 1000);
      var size = f.file.size, name = f.path;
      var plain = /^[\x20-\x7e]*$/.test(name) && name.length <= 100 && size < 8589934592;
      if (!plain) {
        var pax = enc.encode(paxRecord("path", name) + paxRecord("size", String(size)));
        var h = header("pax-header", pax.length, mtime, "x");
        add(512, function () { return h; });
        add(pax.length + pad(pax.length), function () {
          var b = new Uint8Array(pax.length + pad(pax.length)); b.set(pax); return b;
        });
      }
      var main = header(plain ? name : "long-name", Math.min(size, 8589934591), mtime, "0");
      add(512, function () { return main; });
      if (size) { add(size, function (a, b) { return f.file.slice(a, b); }); }
      if (pad(size)) { add(pad(size), function () { return new Uint8Array(pad(size)); }); }
    });
    add(1024, function () { return new Uint8Array(1024); });
    return { pieces: pieces, size: at };
  }

  function part(stream, n, partSize) {
    var from = n * partSize, to = Math.min(from + partSize, stream.size), parts = [];
    stream.pieces.forEach(function (p) {
      var start = p[0], end = p[0] + p[1];
      if (end <= from || start >= to) { return; }
      var a = Math.max(from, start) - start, b = Math.min(to, end) - start;
      var made = p[2](a, b);
      parts.push(made instanceof Blob ? made : made.subarray(a, b));
    });
    return new Blob(parts);
  }

  function fingerprint(files) {
    var h1 = 0xdeadbeef, h2 = 0x41c6ce57;  // cyrb53 over the list
    var text = files.map(function (f) {
      return f.path + "\0" + f.file.size + "\0" + f.file.lastModified;
    }).join("\n");
    for (var i = 0; i < text.length; i++) {
      var c = text.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 2654435761); h2 = Math.imul(h2 ^ c, 1597334677);
    }
    h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
    h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
    return "fp-" + files.length + "-" + (h2 >>> 0).toString(16) + (h1 >>> 0).toString(16);
  }

  // -- picking -----------------------------------------------------------------------------
  function choose(files) {
    picked = files.filter(function (f) { return f.path; });
    picked.sort(function (a, b) { return a.path < b.path ? -1 : a.path > b.path ? 1 : 0; });
    var bytes = picked.reduce(function (s, f) { return s + f.file.size; }, 0);
    var top = picked.length && picked[0].path.indexOf("/") > 0 ? picked[0].path.split("/")[0] : "";
    if (top && !$("ds-name").value) { $("ds-name").placeholder = top; }
    var text = picked.length + " files, " + human(bytes) + " picked.";
    if (bytes > BIG) { text += " That is more than 1 GB: the CLI is faster for this (grid datastore create FOLDER)."; }
    say("picked", text);
    $("upload").disabled = picked.length === 0;
  }

  function fromInput(input) {
    return Array.prototype.map.call(input.files, function (file) {
      return { path: file.webkitRelativePath || file.name, file: file };
    });
  }

  function readEntry(entry, out) {
    return new Promise(function (resolve, reject) {
      if (entry.isFile) {
        entry.file(function (file) {
          out.push({ path: entry.fullPath.replace(/^\/+/, ""), file: file }); resolve();
        }, reject);
        return;
      }
      var reader = entry.createReader(), all = [];
      (function more() {
        reader.readEntries(function (batch) {
          if (!batch.length) {
            Promise.all(all.map(function (e) { return readEntry(e, out); })).then(resolve, reject);
            return;
          }
          all = all.concat(Array.prototype.slice.call(batch));
          more();
        }, reject);
      })();
    });
  }

  $("pick-files").addEventListener("change", function () { choose(fromInput(this)); });
  $("pick-folder").addEventListener("change", function () { choose(fromInput(this)); });
  var drop = $("drop");
  drop.addEventListener("dragover", function (e) { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", function () { drop.classList.remove("over"); });
  drop.addEventListener("drop", function (e) {
    e.preventDefault();
    drop.classList.remove("over");
    var out = [], entries = Array.prototype.map.call(e.dataTransfer.items, function (item) {
      return item.webkitGetAsEntry && item.webkitGetAsEntry();
    }).filter(Boolean);
    Promise.all(entries.map(function (en) { return readEntry(en, out); }))
      .then(function () { choose(out); }, function () { say("picked", "Could not read what was dropped.", true); });
  });
  drop.addEventListener("keydown", function (e) {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("pick-files").click(); }
  });

  // -- sending -------------------------------------------------------------------------------
  function request(method, url, body) {
    return fetch(url, {
      method: method, body: body === undefined ? undefined : JSON.stringify(body),
      headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF }, credentials: "same-origin"
    }).then(function (r) {
      if (r.ok) { return r; }
      return r.json().catch(function () { return {}; }).then(function (p) {
        var err = new Error(p.detail || ("The server answered " + r.status + "."));
        err.permanent = r.status < 500; throw err;
      });
    });
  }

  // A part goes to the server, or (url given by the server) straight to the store.
  function sendPart(url, direct, blob, onProgress) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      xhr.open("PUT", url);
      if (!direct) { xhr.setRequestHeader("X-CSRF-Token", CSRF); }
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.upload.onprogress = function (e) { onProgress(e.loaded); };
      xhr.onload = function () {
        if (xhr.status === 204 || (direct && xhr.status === 200)) { resolve(); return; }
        var p = {}; try { p = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
        var err = new Error(p.detail || ("The server answered " + xhr.status + "."));
        err.permanent = xhr.status < 500; reject(err);
      };
      xhr.onerror = function () { reject(new Error("the connection dropped")); };
      xhr.send(blob);
    });
  }

  function withRetries(work, onRetry) {
    var tries = 0;
    return (function attempt() {
      return work().catch(function (err) {
        if (err.permanent || ++tries > 12) { throw err; }
        onRetry(err, tries);
        return new Promise(function (r) { setTimeout(r, Math.min(500 * Math.pow(2, tries), 10000)); }).then(attempt);
      });
    })();
  }

  function readLines(response, onLine) {
    var reader = response.body.getReader(), dec = new TextDecoder(), rest = "";
    return (function pump() {
      return reader.read().then(function (chunk) {
        rest += dec.decode(chunk.value || new Uint8Array(), { stream: !chunk.done });
        var lines = rest.split("\n"); rest = lines.pop();
        lines.forEach(function (l) { if (l.trim()) { onLine(JSON.parse(l)); } });
        if (!chunk.done) { return pump(); }
      });
    })();
  }

  function follow(response, bar, statusId) {
    var end = null;
    return readLines(response, function (line) {
      if (line.progress) {
        var p = line.progress, total = p.download_total || p.total_bytes;
        var done = p.downloaded !== null && p.downloaded !== undefined ? p.downloaded : p.bytes;
        if (total) { bar.max = total; bar.value = done; }
        say(statusId, "Storing: " + p.phase + ", " + p.files + " files, " + human(done) + (total ? " of " + human(total) : ""));
      } else if (line.version || line.error) { end = line; }
    }).then(function () {
      if (end && end.version) {
        var v = end.version;
        bar.max = 1; bar.value = 1;
        say(statusId, v.datastore + ":" + v.number + " " + v.status + ": " + v.files + " files, " + human(v.size) + ".");
        htmx.trigger(document.body, "refresh");
        return v;
      }
      var why = end && end.error ? end.error.detail : "the server stopped answering";
      throw Object.assign(new Error(why), { permanent: true });
    });
  }

  function upload() {
    var where = target();
    if (!where) { say("upload-status", "Give the datastore a name.", true); $("ds-name").focus(); return; }
    var files = picked.slice(), stream = layout(files), bar = $("upload-progress");
    var base = api(where) + "/uploads", sent = 0, started = Date.now(), session = 0;
    var label = files[0].path.indexOf("/") > 0 ? files[0].path.split("/")[0] + "/" : files.length + " files";
    var saved = { owner: where.owner, name: where.name, label: label, files: files.length, size: stream.size };
    $("upload").disabled = true;
    say("upload-status", "Starting…");
    request("POST", base, { size: stream.size, files: files.length, fingerprint: fingerprint(files), label: label })
      .then(function (r) { return r.json(); })
      .then(function (up) {
        localStorage.setItem(SAVED, JSON.stringify(saved));
        var todo = [], have = {};
        up.received.forEach(function (n) { have[n] = true; });
        for (var n = 0; n < up.parts; n++) { if (!have[n]) { todo.push(n); } }
        sent = stream.size - todo.reduce(function (s, n) { return s + Math.min(up.part_size, stream.size - n * up.part_size); }, 0);
        bar.max = stream.size; bar.value = sent;
        var inFlight = {};
        function show() {
          var now = sent + Object.keys(inFlight).reduce(function (s, k) { return s + inFlight[k]; }, 0);
          bar.value = now;
          var secs = Math.max((Date.now() - started) / 1000, 0.001);
          say("upload-status", "Uploading " + human(now) + " of " + human(stream.size) + " (" +
              Math.floor(now * 100 / stream.size) + "%) at " + human((now - (stream.size - session)) / secs) + "/s");
        }
        session = todo.reduce(function (s, n) { return s + Math.min(up.part_size, stream.size - n * up.part_size); }, 0);
        if (up.received.length) { say("upload-status", "Resuming: " + up.received.length + " of " + up.parts + " parts are already stored."); }
        function worker() {
          var n = todo.shift();
          if (n === undefined) { return Promise.resolve(); }
          var blob = part(stream, n, up.part_size);
          var direct = up.urls && up.urls[n];
          var progress = function (done) { inFlight[n] = done; show(); };
          return withRetries(function () {
            inFlight[n] = 0;
            if (!direct) { return sendPart(base + "/" + up.id + "/parts/" + n, false, blob, progress); }
            return sendPart(direct, true, blob, progress).then(function () {
              return request("POST", base + "/" + up.id + "/parts/" + n + "/stored");
            });
          }, function (err, tries) {
            delete inFlight[n];
            say("upload-status", "The connection dropped (" + err.message + "); trying again (" + tries + ")…", true);
          }).then(function () { delete inFlight[n]; sent += blob.size; show(); return worker(); });
        }
        return (up.finishing ? Promise.resolve() : Promise.all([worker(), worker(), worker()])).then(function () {
          say("upload-status", "Uploaded; storing it as " + where.name + ":" + up.version + "…");
          return request("POST", base + "/" + up.id + "/finish");
        }).then(function (r) { return follow(r, bar, "upload-status"); });
      })
      .then(function () { localStorage.removeItem(SAVED); },
            function (err) { say("upload-status", "Upload stopped: " + err.message + ". Pick the same files to resume.", true); })
      .then(function () { $("upload").disabled = picked.length === 0; });
  }

  $("upload").addEventListener("click", upload);

  $("import-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var where = target(), source = $("import-source").value.trim(), bar = $("import-progress");
    if (!where) {
      var last = source.replace(/[?#].*$/, "").replace(/\/+$/, "").split("/").pop() || "";
      var name = last.replace(/\.(tar\.gz|tar\.bz2|tar\.xz|tar\.zst|tgz|tbz2|txz|tzst|tar|zip|gz|bz2|xz|zst)$/i, "");
      if (!name) { say("import-status", "Give the datastore a name.", true); return; }
      where = { owner: panel.dataset.owner, name: name };
    }
    say("import-status", "Starting…");
    request("POST", api(where) + "/imports", { source: source })
      .then(function (r) { return follow(r, bar, "import-status"); })
      .catch(function (err) { say("import-status", "Import failed: " + err.message, true); });
  });

  var pending = JSON.parse(localStorage.getItem(SAVED) || "null");
  if (pending && pending.owner && !$("ds-name").readOnly) {
    $("ds-name").value = pending.owner === panel.dataset.owner ? pending.name : pending.owner + "/" + pending.name;
  }
  if (pending && (!$("ds-name").readOnly || $("ds-name").value === pending.name)) {
    say("upload-status", "An upload of " + pending.label + " (" + pending.files + " files, " + human(pending.size) +
        ") to " + pending.name + " did not finish: pick the same files again to resume it.");
  }
})();
