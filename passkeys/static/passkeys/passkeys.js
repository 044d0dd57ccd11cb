// WebAuthn ceremonies for Settings → Passkeys and "Log in with a passkey". The server sends options as
// JSON with base64url fields (py_webauthn's options_to_json) and receives the credential the same way.
(function () {
  function toBytes(b64url) {
    var b64 = b64url.replace(/-/g, "+").replace(/_/g, "/"), pad = b64.length % 4 ? "====".slice(b64.length % 4) : "";
    return Uint8Array.from(atob(b64 + pad), function (c) { return c.charCodeAt(0); });
  }
  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer), text = "";
    for (var i = 0; i < bytes.length; i++) { text += String.fromCharCode(bytes[i]); }
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function post(url, csrf, body) {
    return fetch(url, {method: "POST", credentials: "same-origin", body: body ? JSON.stringify(body) : "{}",
                       headers: {"X-CSRFToken": csrf, "Content-Type": "application/json"}})
      .then(function (r) { return r.json().then(function (data) { if (!r.ok) { throw new Error(data.error || r.status); } return data; }); });
  }
  function credentialJSON(credential) {
    var r = credential.response, json = {id: credential.id, rawId: toB64url(credential.rawId), type: credential.type,
      clientExtensionResults: credential.getClientExtensionResults(), response: {clientDataJSON: toB64url(r.clientDataJSON)}};
    if (r.attestationObject) {
      json.response.attestationObject = toB64url(r.attestationObject);
      if (r.getTransports) { json.response.transports = r.getTransports(); }
    } else {
      json.response.authenticatorData = toB64url(r.authenticatorData);
      json.response.signature = toB64url(r.signature);
      if (r.userHandle) { json.response.userHandle = toB64url(r.userHandle); }
    }
    return json;
  }
  function run(button) {
    var box = button.closest("[data-passkey]"), csrf = box.querySelector("[name=csrfmiddlewaretoken]").value,
        error = box.querySelector("[data-passkey-error]"), mode = box.dataset.passkey;
    error.textContent = "";
    if (!window.PublicKeyCredential) { error.textContent = box.dataset.unsupported; return; }
    button.disabled = true;
    post(box.dataset.optionsUrl, csrf).then(function (options) {
      options.challenge = toBytes(options.challenge);
      (options.allowCredentials || options.excludeCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
      if (mode === "register") {
        options.user.id = toBytes(options.user.id);
        return navigator.credentials.create({publicKey: options});
      }
      return navigator.credentials.get({publicKey: options});
    }).then(function (credential) {
      var name = box.querySelector("[name=name]"), next = box.querySelector("[name=next]");
      return post(box.dataset.submitUrl, csrf, {credential: credentialJSON(credential),
                                                name: name ? name.value : "", next: next ? next.value : ""});
    }).then(function (data) { window.location.assign(data.redirect); })
      .catch(function (e) { error.textContent = e.name === "NotAllowedError" ? box.dataset.cancelled : (e.message || String(e)); })
      .finally(function () { button.disabled = false; });
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-passkey-start]");
    if (button) { event.preventDefault(); run(button); }
  });
})();
