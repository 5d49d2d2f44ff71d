// Confirmation and input dialogs, built on <dialog>. Every action of the dashboard asks first.

import { h } from "./dom.js";

/**
 * Show a dialog and resolve with the field values when confirmed, or null when cancelled.
 * fields: [{name, label, kind: "text" | "json" | "list", value, placeholder, options, required}]
 * submit(values) may throw to keep the dialog open with the error shown under the fields.
 */
export function formDialog({ title, message, fields = [], confirmLabel = "Confirm", danger = false, submit }) {
  return new Promise((resolve) => {
    const error = h("div", { class: "error", "data-testid": "dialog-error" });
    const inputs = {};
    const rows = fields.map((field) => {
      let input;
      if (field.kind === "json") {
        input = h("textarea", { name: field.name, placeholder: field.placeholder || "null", spellcheck: "false" });
        input.value = field.value ?? "";
      } else {
        input = h("input", { type: "text", name: field.name, placeholder: field.placeholder || "", autocomplete: "off" });
        input.value = field.value ?? "";
        if (field.options && field.options.length) input.setAttribute("list", `list-${field.name}`);
      }
      input.dataset.testid = `field-${field.name}`;
      inputs[field.name] = { input, field };
      const extra = field.options && field.options.length && field.kind !== "json"
        ? h("datalist", { id: `list-${field.name}` }, field.options.map((o) => h("option", { value: o })))
        : null;
      return h("label", { class: "field" }, field.label, input, extra);
    });
    const confirm = h("button", {
      type: "submit", class: danger ? "danger solid" : "primary", "data-testid": "dialog-confirm",
    }, confirmLabel);
    const cancel = h("button", { type: "button", "data-testid": "dialog-cancel" }, "Cancel");
    const form = h("form", { method: "dialog" },
      h("h3", {}, title),
      message ? (message instanceof Node ? message : h("p", {}, message)) : null,
      rows, error,
      h("div", { class: "buttons" }, cancel, confirm));
    const dialog = h("dialog", { "data-testid": "dialog" }, form);
    document.body.append(dialog);

    const close = (value) => {
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    cancel.addEventListener("click", () => close(null));
    dialog.addEventListener("cancel", (event) => { event.preventDefault(); close(null); });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      const values = {};
      for (const [name, { input, field }] of Object.entries(inputs)) {
        const raw = input.value.trim();
        if (field.required && !raw) {
          error.textContent = `${field.label} is required.`;
          input.focus();
          return;
        }
        if (field.kind === "json") {
          try {
            values[name] = raw ? JSON.parse(raw) : null;
          } catch (exc) {
            error.textContent = `${field.label} is not valid JSON: ${exc.message}`;
            input.focus();
            return;
          }
        } else {
          values[name] = raw;
        }
      }
      if (submit) {
        confirm.disabled = true;
        try {
          const result = await submit(values);
          close(result === undefined ? values : result);
        } catch (exc) {
          error.textContent = exc.message;
          confirm.disabled = false;
        }
        return;
      }
      close(values);
    });
    dialog.showModal();
    const first = fields.length ? inputs[fields[0].name].input : confirm;
    first.focus();
  });
}

export function confirmDialog(options) {
  return formDialog({ ...options, fields: options.fields || [] });
}
