"""The `console` process: websockify's proxy for the browser's noVNC websocket, with our one-time tokens
(orders.console_plugin) and one addition: when the VM's module opens the VNC stream itself
(orders.console.console_stream: Proxmox VE's VNC websocket, which needs the API token), the browser is
relayed to that stream instead of a TCP connection to the token's host:port.

    python -m orders.console_relay [HOST:]PORT

Like websockify, it forks a process per connection; Django is set up there by the token plugin.
"""
import logging
import re
import sys

from websockify.websocketproxy import ProxyRequestHandler, WebSocketProxy
from websockify.websockifyserver import WebSockifyServer

from orders.console_plugin import ConsoleTokenPlugin


ONE_TIME_TOKEN = re.compile(r"(token=|Token ')[^&\s'\"]+", re.IGNORECASE)


class HideTokens(logging.Filter):
    """websockify logs the request path and refused tokens: the console's one-time tokens stay out of logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = ONE_TIME_TOKEN.sub(r"\1[hidden]", record.getMessage()), ()
        return True


class ConsoleRequestHandler(ProxyRequestHandler):
    def validate_connection(self):
        # An unknown, used or expired token ends here (EClose): the browser gets no websocket.
        self.console_target = self.get_target(self.server.token_plugin)
        self.server.target_host, self.server.target_port = self.console_target.host, self.console_target.port

    def new_websocket_client(self):
        from orders.console import console_stream
        from orders.provisioning import ModuleError

        try:
            stream = console_stream(target=self.console_target)
        except ModuleError as error:
            self.log_message("Console of order %s: %s", self.console_target.order.pk, error)
            raise self.CClose(1011, "Failed to connect to downstream server") from None
        if stream is None:
            return super().new_websocket_client()
        try:
            self.do_proxy(stream)
        finally:
            stream.close()


def main(listen: str) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # On the logger, not a handler: Django's logging setup in the connection's process replaces the handlers.
    WebSockifyServer.get_logger().addFilter(HideTokens())
    host, _sep, port = listen.rpartition(":")
    WebSocketProxy(RequestHandlerClass=ConsoleRequestHandler, listen_host=host, listen_port=int(port),
                   token_plugin=ConsoleTokenPlugin()).start_server()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m orders.console_relay [HOST:]PORT")
    main(sys.argv[1])
