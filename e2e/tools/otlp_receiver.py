"""An OTLP metrics receiver for the end-to-end tests, built on the official protobuf
definitions (the opentelemetry-proto package) and grpcio: it serves OTLP/gRPC
(MetricsService/Export) and OTLP/HTTP protobuf (POST /v1/metrics) on loopback, and appends
every request it receives, as JSON (protobuf's own JSON mapping) with its headers (gRPC
metadata), one line per request, to a file. It prints "ready <grpc port> <http port>" once both listen.

Usage: otlp_receiver.py OUTPUT_FILE
"""

import http.server
import json
import sys
import threading
from concurrent import futures

import grpc
from google.protobuf.json_format import MessageToJson
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc

LOCK = threading.Lock()


def record(out, transport, headers, request):
    line = MessageToJson(request, indent=None, preserving_proto_field_name=False)
    headers = json.dumps({k.lower(): v for k, v in headers})
    with LOCK:
        out.write('{"transport":"%s","headers":%s,"request":%s}\n' % (transport, headers, line))
        out.flush()


class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, out):
        self.out = out

    def Export(self, request, context):
        record(self.out, "grpc", context.invocation_metadata(), request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


def http_handler(out):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            if length < 0 or length > 64 * 1024 * 1024:
                self.send_error(413)
                return
            body = self.rfile.read(length)
            if self.path != "/v1/metrics":
                self.send_error(404)
                return
            request = metrics_service_pb2.ExportMetricsServiceRequest()
            try:
                request.ParseFromString(body)
            except Exception:  # a body that is not the protobuf message
                self.send_error(400)
                return
            record(out, "http", self.headers.items(), request)
            response = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(response)))
            self.end_headers()
            self.wfile.write(response)

        def log_message(self, *args):
            pass

    return Handler


def main():
    out = open(sys.argv[1], "a", encoding="utf-8")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(out), server)
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http_handler(out))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    print("ready %d %d" % (grpc_port, httpd.server_address[1]), flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
