"""A basic-auth reverse proxy on loopback, as teams put in front of an MLflow server that others can reach."""

import base64
import http.client
import http.server
from urllib.parse import urlsplit

from conftest import BackgroundServer

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "host", "authorization"}


class BasicAuthProxy(BackgroundServer):
    """Forwards every request to ``upstream`` when it carries ``user``/``password``; 401 otherwise."""

    def __init__(self, upstream: str, user: str, password: str):
        target = urlsplit(upstream)
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.refused = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                if self.headers.get("Authorization") != expected:
                    proxy.refused += 1
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="mlflow"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
                headers = {key: value for key, value in self.headers.items() if key.lower() not in HOP_BY_HOP}
                connection.request(self.command, self.path, body=body, headers=headers)
                reply = connection.getresponse()
                data = reply.read()
                self.send_response(reply.status)
                for key, value in reply.getheaders():
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                connection.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward  # noqa: N815

            def log_message(self, *args):
                pass

        super().__init__(Handler)
