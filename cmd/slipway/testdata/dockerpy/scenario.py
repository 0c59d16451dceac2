"""docker-py against slipway serve: load, create, list, inspect, remove, and the error paths.

Run by TestServeDockerPy with the socket path and an image tarball; prints one line per step,
which the Go test checks.
"""
import sys

import docker

sock, tarball, image = sys.argv[1], sys.argv[2], sys.argv[3]
client = docker.DockerClient(base_url="unix://" + sock, version="auto")

print("ping", client.ping())
print("version", client.version()["ApiVersion"])

with open(tarball, "rb") as f:
    loaded = client.images.load(f.read())
print("loaded", ",".join(sorted(t for i in loaded for t in i.tags)))

c = client.containers.create(image, name="pyweb", environment={"A": "1"}, labels={"tier": "py"},
                             network="slipway", command=["--serve"])
print("created", len(c.id))
c.reload()
print("status", c.status)
print("name", c.name)
print("labels", c.labels.get("tier"))
print("env", "A=1" in c.attrs["Config"]["Env"])
print("ip", c.attrs["NetworkSettings"]["Networks"]["slipway"]["IPAddress"])

print("listed", [x.name for x in client.containers.list(all=True, filters={"label": "tier=py"})])

try:
    client.containers.create(image, name="pyweb")
except docker.errors.APIError as e:
    print("conflict", e.status_code, "is already in use" in str(e))

try:
    client.containers.create("no/such:image")
except docker.errors.ImageNotFound as e:
    print("missing image", e.status_code)

try:
    client.containers.get("nosuch")
except docker.errors.NotFound as e:
    print("missing container", e.status_code)

c.remove(force=True)
print("left", len(client.containers.list(all=True)))
