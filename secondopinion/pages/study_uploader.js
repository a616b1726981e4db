// The study uploader: sends the chosen files a few at a time to the chunked upload routes
// (secondopinion/api/uploads.py), shows per-file progress, retries failed requests, and requests
// the commit of the upload when every file has arrived. It emits "uploaded" with the server's
// summary, or "failed" with a message for the patient and the rejected files with their reasons.

const RETRY_STATUSES = [0, 408, 425, 429, 500, 502, 503, 504];

function waitFor(milliseconds) {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}

// Fill the {name} placeholders of a translated template from the uploader's `texts` prop.
function fill(template, params) {
  return template.replace(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (match, name) => (name in params ? params[name] : match));
}

function formatBytes(size, texts) {
  const units = [["GB", 1024 ** 3], ["MB", 1024 ** 2], ["KB", 1024]];
  for (const [unit, factor] of units) {
    if (size >= factor) return `${(size / factor).toFixed(1)} ${unit}`;
  }
  return fill(texts.bytes, { count: size });
}

function countFiles(count, texts) {
  return fill(count === 1 ? texts.files_one : texts.files_other, { number: count.toLocaleString() });
}

function readEntries(reader) {
  return new Promise((resolve, reject) => reader.readEntries(resolve, reject));
}

// Collect the files below a dropped folder entry, with their paths relative to the dropped folder's parent.
async function collectEntry(entry, found) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    found.push({ file, name: entry.fullPath.replace(/^\//, "") });
    return;
  }
  const reader = entry.createReader();
  for (let batch = await readEntries(reader); batch.length; batch = await readEntries(reader)) {
    for (const child of batch) await collectEntry(child, found);
  }
}

export default {
  template: `
    <div class="study-uploader column q-gutter-sm"
         @dragover.prevent="dragging = !busy" @dragleave.prevent="dragging = false" @drop.prevent="onDrop">
      <div class="row items-center q-gutter-sm rounded-borders q-pa-sm"
           :class="dragging ? 'bg-blue-1' : 'bg-grey-2'" style="border: 1px dashed #9e9e9e">
        <q-btn color="primary" icon="upload_file" :label="texts.choose_files" :disable="busy" no-caps
               @click="$refs.files.click()" />
        <q-btn outline color="primary" icon="folder_open" :label="texts.choose_folder" :disable="busy" no-caps
               class="gt-xs" @click="$refs.folder.click()" />
        <span class="text-caption text-grey-8 gt-xs">{{ hint }}</span>
        <span class="text-caption text-grey-8 xs">{{ shorthint }}</span>
        <input ref="files" type="file" multiple hidden :aria-label="texts.files_input"
               @change="onPick($event, false)" />
        <input ref="folder" type="file" webkitdirectory multiple hidden :aria-label="texts.folder_input"
               @change="onPick($event, true)" />
      </div>
      <div v-if="phase" class="column q-gutter-xs" role="status" aria-live="polite">
        <div class="text-body2 upload-progress-text">{{ statusText }}</div>
        <q-linear-progress :value="progress" :indeterminate="phase === 'committing'" size="10px" rounded
                           color="primary" track-color="grey-3" />
        <div v-for="item in active" :key="item.index" class="row items-center no-wrap q-gutter-x-sm text-caption">
          <span class="col ellipsis">{{ item.name }}</span>
          <span v-if="item.attempt > 1" class="text-warning-strong">{{ t("attempt", { count: item.attempt }) }}</span>
          <span style="min-width: 3em; text-align: right">{{ percent(item) }}%</span>
        </div>
        <div>
          <q-btn v-if="phase === 'sending'" flat dense no-caps color="negative" icon="close" :label="texts.cancel"
                 @click="cancel" />
        </div>
      </div>
    </div>`,
  props: {
    url: String,
    concurrency: { type: Number, default: 3 },
    attempts: { type: Number, default: 4 },
    retryDelayMs: { type: Number, default: 1000 },
    hint: String,
    shorthint: String, // shown on phones, where folders cannot be chosen or dropped
    texts: Object, // translated templates by key, from study_uploader.py
  },
  data() {
    return {
      phase: "", // "", "starting", "sending", "committing"
      dragging: false,
      uploadId: null,
      totalFiles: 0,
      totalBytes: 0,
      doneFiles: 0,
      doneBytes: 0,
      active: [],
      requests: new Set(),
      cancelled: false,
    };
  },
  computed: {
    busy() {
      return this.phase !== "";
    },
    progress() {
      const sending = this.active.reduce((sum, item) => sum + item.loaded, 0);
      return this.totalBytes ? (this.doneBytes + sending) / this.totalBytes : 0;
    },
    statusText() {
      const files = countFiles(this.totalFiles, this.texts);
      if (this.phase === "starting") return this.t("preparing", { files });
      if (this.phase === "committing") {
        const sent = this.totalFiles === 1 ? this.t("one_sent") : this.t("all_sent", { files });
        return `${sent} ${this.t("checking")}`;
      }
      return this.t("sending", {
        done: this.doneFiles.toLocaleString(),
        files,
        sent: formatBytes(this.doneBytes, this.texts),
        total: formatBytes(this.totalBytes, this.texts),
      });
    },
  },
  mounted() {
    this.onPageHide = () => this.dropUpload(true);
    window.addEventListener("pagehide", this.onPageHide);
  },
  beforeUnmount() {
    window.removeEventListener("pagehide", this.onPageHide);
    if (this.phase === "sending" || this.phase === "starting") this.cancel();
  },
  methods: {
    t(key, params = {}) {
      return fill(this.texts[key], params);
    },
    apiUrl(path) {
      return (window.path_prefix || "") + path;
    },
    percent(item) {
      return item.size ? Math.floor((item.loaded * 100) / item.size) : 100;
    },
    onPick(event, folder) {
      const files = [...event.target.files].map((file) => ({ file, name: file.webkitRelativePath || file.name }));
      event.target.value = "";
      if (files.length) this.run(files, folder);
    },
    async onDrop(event) {
      this.dragging = false;
      if (this.busy) return;
      const entries = [...(event.dataTransfer.items || [])]
        .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null))
        .filter((entry) => entry);
      if (entries.some((entry) => entry.isDirectory)) {
        const found = [];
        try {
          for (const entry of entries) await collectEntry(entry, found);
        } catch (error) {
          this.$emit("failed", { message: this.t("folder_unreadable") });
          return;
        }
        if (found.length) this.run(found, true);
        return;
      }
      const files = [...event.dataTransfer.files].map((file) => ({ file, name: file.name }));
      if (files.length) this.run(files, false);
    },
    async run(files, folder) {
      this.cancelled = false;
      this.totalFiles = files.length;
      this.totalBytes = files.reduce((sum, item) => sum + item.file.size, 0);
      this.doneFiles = 0;
      this.doneBytes = 0;
      this.active = [];
      this.phase = "starting";
      try {
        const started = await this.postJson(this.url, {
          folder,
          files: files.map((item) => ({ name: item.name, size: item.file.size })),
        });
        this.uploadId = started.upload_id;
        this.phase = "sending";
        let next = 0;
        const worker = async () => {
          while (!this.cancelled && next < files.length) {
            const index = next++;
            await this.sendWithRetries(index, files[index]);
          }
        };
        const workers = Array.from({ length: Math.min(this.concurrency, files.length) }, worker);
        await Promise.all(workers);
        if (this.cancelled) return;
        this.phase = "committing";
        const summary = await this.postJson(`/api/uploads/${this.uploadId}/commit`, null);
        this.uploadId = null;
        this.$emit("uploaded", summary);
      } catch (error) {
        if (!this.cancelled) {
          this.cancelled = true;
          this.abortRequests();
          this.dropUpload(false);
          this.$emit("failed", {
            message: error.message || this.t("failed"),
            files: error.files || [],
          });
        }
      } finally {
        this.phase = "";
        this.active = [];
      }
    },
    async postJson(path, body) {
      let response;
      try {
        response = await fetch(this.apiUrl(path), {
          method: "POST",
          headers: body === null ? {} : { "Content-Type": "application/json" },
          body: body === null ? null : JSON.stringify(body),
          credentials: "same-origin",
        });
      } catch (error) {
        throw new Error(this.t("connection_lost"));
      }
      const data = await response.json().catch(() => ({}));
      if (!response.ok) {
        const detail = typeof data.detail === "string" ? data.detail : "";
        const failure = new Error(detail || this.t("server_status", { status: response.status }));
        failure.files = Array.isArray(data.files) ? data.files : []; // [{name, reason}] of rejected files
        throw failure;
      }
      return data;
    },
    async sendWithRetries(index, item) {
      const entry = { index, name: item.name, size: item.file.size, loaded: 0, attempt: 1 };
      this.active.push(entry);
      const tracked = this.active[this.active.length - 1]; // the reactive copy, so progress shows
      try {
        for (;;) {
          const result = await this.send(index, item.file, tracked);
          if (result.ok) break;
          if (this.cancelled) return;
          if (!RETRY_STATUSES.includes(result.status) || tracked.attempt >= this.attempts) {
            throw new Error(result.detail || this.t("not_sent", { name: item.name, count: tracked.attempt }));
          }
          await waitFor(this.retryDelayMs * 2 ** (tracked.attempt - 1));
          tracked.attempt += 1;
          tracked.loaded = 0;
        }
        this.doneFiles += 1;
        this.doneBytes += item.file.size;
      } finally {
        this.active = this.active.filter((other) => other.index !== index);
      }
    },
    send(index, file, tracked) {
      return new Promise((resolve) => {
        const request = new XMLHttpRequest();
        this.requests.add(request);
        request.open("PUT", this.apiUrl(`/api/uploads/${this.uploadId}/files/${index}`));
        request.setRequestHeader("Content-Type", "application/octet-stream");
        request.upload.onprogress = (event) => {
          tracked.loaded = event.loaded;
        };
        const finish = (status) => {
          this.requests.delete(request);
          let detail = "";
          try {
            detail = JSON.parse(request.responseText || "{}").detail || "";
          } catch (error) {
            detail = "";
          }
          resolve({ ok: status >= 200 && status < 300, status, detail: typeof detail === "string" ? detail : "" });
        };
        request.onload = () => finish(request.status);
        request.onerror = () => finish(0);
        request.ontimeout = () => finish(0);
        request.onabort = () => finish(0);
        request.send(file);
      });
    },
    abortRequests() {
      for (const request of [...this.requests]) request.abort();
      this.requests.clear();
    },
    cancel() {
      this.cancelled = true;
      this.abortRequests();
      this.dropUpload(false);
      this.$emit("failed", { message: this.t("cancelled"), cancelled: true });
    },
    dropUpload(leavingPage) {
      if (!this.uploadId || this.phase === "committing") return;
      const url = this.apiUrl(`/api/uploads/${this.uploadId}`);
      this.uploadId = null;
      // keepalive lets the request finish while the page unloads.
      fetch(url, { method: "DELETE", credentials: "same-origin", keepalive: leavingPage }).catch(() => {});
    },
  },
};
