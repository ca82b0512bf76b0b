// The box editor of the labeling page: draw, select, move, resize and delete defect boxes on a
// canvas, choose their class, set the image label and save a revision.
// Boxes live in image pixels; only drawing converts to screen pixels. User text (class names,
// server messages) is only ever set with textContent or drawn with fillText.
"use strict";

(function () {
  const HANDLE_PX = 7; // how near a corner (screen px) the pointer grabs it
  const MIN_BOX_PX = 3; // a drag shorter than this (screen px) is a click, not a box
  const COLORS = ["#ff3d00", "#00b8d4", "#ffd600", "#d500f9", "#64dd17", "#ff80ab", "#2979ff"];
  const CORNERS = [["x0", "y0"], ["x1", "y0"], ["x0", "y1"], ["x1", "y1"]];

  function init(root) {
    const data = JSON.parse(document.getElementById(root.dataset.annotate).textContent);
    const canvas = root.querySelector("#annotate-canvas");
    const ctx = canvas.getContext("2d");
    const classSelect = root.querySelector("#annotate-class");
    const list = root.querySelector("#annotate-box-list");
    const count = root.querySelector("#annotate-count");
    const deleteButton = root.querySelector("#annotate-delete");
    const modelButton = root.querySelector("#annotate-from-model");
    const saveButton = root.querySelector("#annotate-save");
    const note = root.querySelector("#annotate-note");
    const status = root.querySelector("#annotate-status");
    const radios = root.querySelectorAll("input[name=image_label]");

    const image = new Image();
    let scale = 1;
    let boxes = [];
    let selected = -1;
    let drag = null; // {mode: "draw" | "move" | "resize", ...}
    let dirty = false;
    let saving = false;

    // --- state ------------------------------------------------------------------------------

    function load(revision) {
      boxes = revision ? revision.boxes.map(copyBox) : [];
      setImageLabel(revision ? revision.image_label : "");
      selected = -1;
      dirty = false;
    }

    function copyBox(b) {
      return { x0: b.x0, y0: b.y0, x1: b.x1, y1: b.y1, label: b.label };
    }

    function changed() {
      dirty = true;
      render();
    }

    function imageLabel() {
      const checked = root.querySelector("input[name=image_label]:checked");
      return checked ? checked.value : "";
    }

    function setImageLabel(value) {
      radios.forEach((radio) => { radio.checked = radio.value === value; });
    }

    function select(index) {
      selected = index;
      if (index >= 0) classSelect.value = boxes[index].label;
      render();
    }

    function addBox(box) {
      boxes.push(box);
      // a box is a defect: the image cannot stay labeled OK
      if (imageLabel() !== "defective") setImageLabel("defective");
      return boxes.length - 1;
    }

    function deleteSelected() {
      if (selected < 0) return;
      boxes.splice(selected, 1);
      selected = -1;
      changed();
    }

    function setClass(label) {
      if (selected < 0 || !data.classes.includes(label)) return;
      boxes[selected].label = label;
      classSelect.value = label;
      changed();
    }

    function startFromModel() {
      if (!data.model_regions) return;
      if (boxes.length && !window.confirm("Replace the current boxes with the model's boxes?")) return;
      boxes = data.model_regions.map((r) => clampBox(copyBox(r)));
      setImageLabel(boxes.length ? "defective" : "ok");
      selected = -1;
      changed();
    }

    // --- geometry -----------------------------------------------------------------------------

    function clamp(v, lo, hi) { return Math.min(hi, Math.max(lo, v)); }
    function round2(v) { return Math.round(v * 100) / 100; }

    function clampBox(b) {
      b.x0 = round2(clamp(b.x0, 0, data.width)); b.x1 = round2(clamp(b.x1, 0, data.width));
      b.y0 = round2(clamp(b.y0, 0, data.height)); b.y1 = round2(clamp(b.y1, 0, data.height));
      return b;
    }

    // the box spanned by a fixed anchor and the pointer, whichever way the drag went
    function spanned(anchor, point, label) {
      return {
        x0: round2(Math.min(anchor.x, point.x)), y0: round2(Math.min(anchor.y, point.y)),
        x1: round2(Math.max(anchor.x, point.x)), y1: round2(Math.max(anchor.y, point.y)),
        label,
      };
    }

    function pointer(event) {
      const rect = canvas.getBoundingClientRect();
      return {
        x: clamp((event.clientX - rect.left) / scale, 0, data.width),
        y: clamp((event.clientY - rect.top) / scale, 0, data.height),
      };
    }

    function cornerAt(p) {
      if (selected < 0) return null;
      const b = boxes[selected];
      const reach = HANDLE_PX / scale;
      for (const [kx, ky] of CORNERS) {
        if (Math.abs(b[kx] - p.x) <= reach && Math.abs(b[ky] - p.y) <= reach) return [kx, ky];
      }
      return null;
    }

    function boxAt(p) {
      // the selected box first, then the topmost (last drawn)
      const inside = (b) => p.x >= b.x0 && p.x <= b.x1 && p.y >= b.y0 && p.y <= b.y1;
      if (selected >= 0 && inside(boxes[selected])) return selected;
      for (let i = boxes.length - 1; i >= 0; i--) if (inside(boxes[i])) return i;
      return -1;
    }

    // --- pointer --------------------------------------------------------------------------------

    canvas.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      canvas.focus();
      canvas.setPointerCapture(event.pointerId);
      const p = pointer(event);
      const corner = cornerAt(p);
      if (corner) {
        const b = boxes[selected];
        // the opposite corner stays where it is
        const anchor = { x: corner[0] === "x0" ? b.x1 : b.x0, y: corner[1] === "y0" ? b.y1 : b.y0 };
        drag = { mode: "resize", anchor, index: selected };
        return;
      }
      const hit = boxAt(p);
      if (hit >= 0) {
        select(hit);
        drag = { mode: "move", start: p, original: copyBox(boxes[hit]), index: hit };
        return;
      }
      select(-1);
      drag = { mode: "draw", anchor: p, index: -1, screen: { x: event.clientX, y: event.clientY } };
    });

    canvas.addEventListener("pointermove", (event) => {
      const p = pointer(event);
      if (!drag) {
        canvas.style.cursor = cornerAt(p) ? "nwse-resize" : boxAt(p) >= 0 ? "move" : "crosshair";
        return;
      }
      if (drag.mode === "draw") {
        const far = Math.max(Math.abs(event.clientX - drag.screen.x), Math.abs(event.clientY - drag.screen.y));
        if (drag.index < 0 && far < MIN_BOX_PX) return;
        const box = spanned(drag.anchor, p, classSelect.value);
        if (drag.index < 0) drag.index = addBox(box);
        else boxes[drag.index] = box;
        selected = drag.index;
      } else if (drag.mode === "resize") {
        boxes[drag.index] = spanned(drag.anchor, p, boxes[drag.index].label);
      } else {
        const o = drag.original;
        const dx = clamp(p.x - drag.start.x, -o.x0, data.width - o.x1);
        const dy = clamp(p.y - drag.start.y, -o.y0, data.height - o.y1);
        if (dx === 0 && dy === 0) return;
        boxes[drag.index] = {
          x0: round2(o.x0 + dx), y0: round2(o.y0 + dy), x1: round2(o.x1 + dx), y1: round2(o.y1 + dy),
          label: o.label,
        };
      }
      changed();
    });

    function endDrag() {
      if (drag && drag.index >= 0) {
        const b = boxes[drag.index];
        // a box too thin to see (a slip while resizing) is dropped rather than saved
        if ((b.x1 - b.x0) * scale < MIN_BOX_PX || (b.y1 - b.y0) * scale < MIN_BOX_PX) {
          boxes.splice(drag.index, 1);
          selected = -1;
          changed();
        }
      }
      drag = null;
    }
    canvas.addEventListener("pointerup", endDrag);
    canvas.addEventListener("pointercancel", endDrag);

    // --- keys and controls ----------------------------------------------------------------------

    document.addEventListener("keydown", (event) => {
      if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "s") {
        event.preventDefault();
        save();
        return;
      }
      const typing = event.target.closest && event.target.closest("input, textarea, select");
      if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
      const step = event.shiftKey ? 10 : 1;
      const nudges = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
      if ((event.key === "Delete" || event.key === "Backspace") && selected >= 0) {
        event.preventDefault();
        deleteSelected();
      } else if (event.key in nudges && selected >= 0) {
        event.preventDefault();
        const [dx, dy] = nudges[event.key];
        const b = boxes[selected];
        const mx = clamp(dx, -b.x0, data.width - b.x1);
        const my = clamp(dy, -b.y0, data.height - b.y1);
        boxes[selected] = { x0: round2(b.x0 + mx), y0: round2(b.y0 + my), x1: round2(b.x1 + mx), y1: round2(b.y1 + my), label: b.label };
        changed();
      } else if (/^[1-9]$/.test(event.key) && data.classes[Number(event.key) - 1] !== undefined) {
        setClass(data.classes[Number(event.key) - 1]);
      } else if (event.key === "Escape") {
        select(-1);
      } else if (event.key === "o" || event.key === "d") {
        setImageLabel(event.key === "o" ? "ok" : "defective");
        changed();
      } else if (event.key === "m" && modelButton) {
        startFromModel();
      }
    });

    classSelect.addEventListener("change", () => setClass(classSelect.value));
    radios.forEach((radio) => radio.addEventListener("change", changed));
    note.addEventListener("input", () => { dirty = true; });
    deleteButton.addEventListener("click", deleteSelected);
    if (modelButton) modelButton.addEventListener("click", startFromModel);
    saveButton.addEventListener("click", save);
    // what the labeling queue's script asks of the editor: save, or leave without saving
    root.addEventListener("annotate:save", save);
    root.addEventListener("annotate:discard", () => { dirty = false; });

    window.addEventListener("beforeunload", (event) => {
      if (!dirty) return;
      event.preventDefault();
      event.returnValue = ""; // older browsers need it set to show the prompt
    });

    async function save() {
      if (saving) return;
      saving = true;
      saveButton.disabled = true;
      showStatus("Saving…", "");
      const answer = await window.loupe.postJSON(data.save_url, {
        image_label: imageLabel(),
        boxes: boxes.map(copyBox),
        note: note.value,
      });
      saving = false;
      saveButton.disabled = false;
      if (!answer.ok) {
        showStatus(answer.data.detail || `Not saved (HTTP ${answer.status}).`, "error");
        return;
      }
      const revision = answer.data.revision;
      dirty = false;
      // the labeling queue's script (labeling_queue.js) moves on to the next item
      root.dispatchEvent(new CustomEvent("annotate:saved", { detail: answer.data }));
      root.querySelector("#annotate-revision-info").textContent =
        `Revision ${revision.number} is the ground truth.`;
      showStatus(
        answer.data.created
          ? (revision.source ? `Saved revision ${revision.number} (${revision.source.replace("_", " ")}).` : `Saved revision ${revision.number}.`)
          : `Nothing changed since revision ${revision.number}.`,
        "ok",
      );
    }

    function showStatus(text, kind) {
      status.textContent = text;
      status.className = `status ${kind}`;
    }

    // --- drawing --------------------------------------------------------------------------------

    function color(label) {
      const index = data.classes.indexOf(label);
      return COLORS[(index < 0 ? 0 : index) % COLORS.length];
    }

    function layout() {
      const stage = canvas.parentElement;
      const maxWidth = Math.max(200, stage.clientWidth);
      const maxHeight = Math.max(200, window.innerHeight * 0.8);
      // small product images are blown up: boxes need room to be drawn precisely
      scale = Math.min(maxWidth / data.width, maxHeight / data.height);
      const ratio = window.devicePixelRatio || 1;
      canvas.style.width = `${data.width * scale}px`;
      canvas.style.height = `${data.height * scale}px`;
      canvas.width = Math.round(data.width * scale * ratio);
      canvas.height = Math.round(data.height * scale * ratio);
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      render();
    }

    function render() {
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      ctx.imageSmoothingEnabled = false;
      if (image.complete && image.naturalWidth) {
        ctx.drawImage(image, 0, 0, data.width * scale, data.height * scale);
      }
      ctx.font = "12px system-ui, sans-serif";
      ctx.textBaseline = "top";
      boxes.forEach((b, i) => {
        const x = b.x0 * scale, y = b.y0 * scale;
        const w = (b.x1 - b.x0) * scale, h = (b.y1 - b.y0) * scale;
        ctx.strokeStyle = color(b.label);
        ctx.lineWidth = i === selected ? 3 : 2;
        ctx.setLineDash(i === selected ? [6, 3] : []);
        ctx.strokeRect(x, y, w, h);
        ctx.setLineDash([]);
        const text = `${i + 1} ${b.label}`;
        const textWidth = ctx.measureText(text).width + 6;
        const ty = y >= 16 ? y - 16 : y + h;
        ctx.fillStyle = color(b.label);
        ctx.fillRect(x, ty, textWidth, 16);
        ctx.fillStyle = "#000";
        ctx.fillText(text, x + 3, ty + 2);
        if (i === selected) {
          ctx.fillStyle = "#fff";
          ctx.strokeStyle = "#000";
          ctx.lineWidth = 1;
          for (const [kx, ky] of CORNERS) {
            ctx.fillRect(b[kx] * scale - 4, b[ky] * scale - 4, 8, 8);
            ctx.strokeRect(b[kx] * scale - 4, b[ky] * scale - 4, 8, 8);
          }
        }
      });
      renderList();
    }

    function renderList() {
      count.textContent = String(boxes.length);
      deleteButton.disabled = selected < 0;
      list.replaceChildren(...boxes.map((b, i) => {
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.className = i === selected ? "box selected" : "box";
        button.dataset.index = String(i);
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = color(b.label);
        const text = document.createElement("span");
        text.textContent = `${b.label} · ${Math.round(b.x0)},${Math.round(b.y0)} – ${Math.round(b.x1)},${Math.round(b.y1)}`;
        button.append(swatch, text);
        button.addEventListener("click", () => select(i));
        item.append(button);
        return item;
      }));
    }

    load(data.latest);
    image.addEventListener("load", render);
    image.src = data.image_url;
    window.addEventListener("resize", layout);
    layout();
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-annotate]").forEach(init);
  });
})();
