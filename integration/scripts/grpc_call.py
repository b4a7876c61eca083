#!/usr/bin/env python3
"""One unary gRPC call with grpcio, message bytes in and out.

Usage: grpc_call.py ADDR /package.Service/Method [--gzip] [--timeout S]
                    [--ca CERT.pem] [--meta KEY=VALUE ...] < request.bin > answer.bin

The request's serialized protobuf is read from stdin and the answer's is
written to stdout; grpcio frames, compresses and reads trailers as any gRPC
client does. On a gRPC error the exit code is the status code and stderr
carries "CODE_NAME: details".
"""
import argparse
import sys

import grpc


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("addr")
    p.add_argument("method")
    p.add_argument("--gzip", action="store_true")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--meta", action="append", default=[])
    p.add_argument("--ca", help="TLS, trusting this PEM certificate")
    a = p.parse_args()
    request = sys.stdin.buffer.read()
    metadata = [tuple(m.split("=", 1)) for m in a.meta]
    compression = grpc.Compression.Gzip if a.gzip else grpc.Compression.NoCompression
    if a.ca:
        with open(a.ca, "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        channel = grpc.secure_channel(a.addr, creds)
    else:
        channel = grpc.insecure_channel(a.addr)
    with channel:
        call = channel.unary_unary(
            a.method,
            request_serializer=None,
            response_deserializer=None,
        )
        try:
            answer = call(
                request,
                metadata=metadata,
                timeout=a.timeout,
                compression=compression,
            )
        except grpc.RpcError as e:
            sys.stderr.write(f"{e.code().name}: {e.details()}\n")
            return e.code().value[0]
    sys.stdout.buffer.write(answer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
