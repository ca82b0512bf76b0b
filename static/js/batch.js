// A batch prediction's page: send the chosen images to the labeling queue and say how many
// went. The form posts JSON (the server answers 200 with counts, or a 4xx with its reason).
"use strict";

(function () {
  function attach(form) {
    const message = form.querySelector("[data-message]");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = form.querySelector("button");
      const fields = form.elements;
      button.disabled = true;
      message.className = "";
      message.textContent = "sending…";
      const { ok, data } = await loupe.postJSON(form.action, {
        which: fields.which.value,
        min_probability: fields.min_probability.value,
        max_probability: fields.max_probability.value,
      });
      button.disabled = false;
      if (!ok) {
        message.className = "error";
        message.textContent = data.detail || "the images could not be sent";
        return;
      }
      message.textContent =
        `${data.selected} image(s) selected, ${data.queued} new on the labeling queue`;
      const sent = document.getElementById("sent-count");
      if (sent) sent.textContent = `${data.sent_to_labeling} image(s)`;
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-batch-labeling]").forEach(attach);
  });
})();
