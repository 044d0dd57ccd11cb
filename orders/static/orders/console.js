// The browser console: noVNC (served from our static files) through websockify with a one-time token.
import RFB from "../novnc/core/rfb.js";

const screen = document.getElementById("console-screen");
const status = document.getElementById("console-status");
let url = screen.dataset.wsUrl;
if (url.startsWith("/")) {
  url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + url;
}
url += (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(screen.dataset.token);
const rfb = new RFB(screen, url, { credentials: { password: screen.dataset.password } });
rfb.scaleViewport = true;
rfb.addEventListener("connect", () => {
  status.textContent = status.dataset.connected;
  screen.dataset.connected = "true";
});
rfb.addEventListener("disconnect", () => {
  status.textContent = status.dataset.disconnected;
  screen.dataset.connected = "false";
});
document.getElementById("console-ctrl-alt-del").addEventListener("click", () => rfb.sendCtrlAltDel());
