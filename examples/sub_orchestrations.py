"""Sub-orchestrations: an orchestrator that calls other orchestrators.

`deploy_site` first prepares the site's network with one sub-orchestration, then provisions
every device with its own `provision_device` sub-orchestration, all in parallel. Each child is
an instance of its own, with its own history and status, and its output is the parent's
result for that step.

Run it:  python examples/sub_orchestrations.py
"""

import durafn as df

app = df.App()


@app.orchestrator
def deploy_site(ctx: df.OrchestrationContext):
    site = ctx.get_input()

    # One child, awaited on its own, with an instance id chosen by the parent.
    network = yield ctx.call_sub_orchestrator(
        "prepare_network", site["name"], instance_id=f"{ctx.instance_id}-network"
    )

    # Several children in parallel (their ids are derived from the parent's).
    devices = yield ctx.task_all(
        [
            ctx.call_sub_orchestrator(provision_device, {"device": device, "network": network})
            for device in site["devices"]
        ]
    )
    return {"site": site["name"], "network": network, "devices": devices}


@app.orchestrator
def prepare_network(ctx: df.OrchestrationContext):
    site = ctx.get_input()
    subnet = yield ctx.call_activity("allocate_subnet", site)
    yield ctx.call_activity("open_firewall", subnet)
    return subnet


@app.orchestrator
def provision_device(ctx: df.OrchestrationContext):
    request = ctx.get_input()
    address = yield ctx.call_activity(
        "assign_address", {"device": request["device"], "subnet": request["network"]}
    )
    yield ctx.call_activity(install_firmware, request["device"])
    return {"device": request["device"], "address": address}


@app.activity
def allocate_subnet(site: str) -> str:
    return f"10.{len(site)}.0.0/24"


@app.activity
def open_firewall(subnet: str) -> None:
    """Would call the firewall's API."""


@app.activity
def assign_address(request: dict) -> str:
    prefix = request["subnet"].rsplit(".", 1)[0]  # "10.4.0.0/24" -> "10.4.0"
    host = int(request["device"].rsplit("-", 1)[1])
    return f"{prefix}.{host}"


@app.activity
def install_firmware(device: str) -> str:
    return f"{device}: firmware 2.1"


if __name__ == "__main__":
    site = {"name": "lyon", "devices": ["cam-1", "cam-2", "door-3"]}
    with df.Runtime(app, store="sqlite:///sub_orchestrations.db") as rt:
        instance_id = rt.client.start_new(deploy_site, site, instance_id="site-lyon")
        result = rt.client.wait_for_completion(instance_id, timeout=30).output
        print(f"site {result['site']}: network {result['network']}")
        for device in result["devices"]:
            print(f"  {device['device']} at {device['address']}")
        # Each sub-orchestration ran as an instance of its own.
        instances = rt.client.get_status_by(instance_id_prefix="site-lyon").instances
        print(f"{len(instances)} instances: the parent and {len(instances) - 1} children")
