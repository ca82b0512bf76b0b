"""The printed report: plain tables, then the Markdown for bench/README.md, then other load."""

from __future__ import annotations

from .config import DISTURBED_CORES
from .end_to_end import PHASES


def report(results: dict) -> str:
    c, e2e, msg = results["ceiling"], results["end_to_end"]["levels"], results["celery_message"]
    raw = c["raw_per_image_ms"]
    split = results["model_split"]
    lines = [
        "",
        f"Machine: {results['machine']['cpus']} CPUs, {results['machine']['cpu_model']}; "
        f"torch {results['machine']['torch']}; image: {results['image']['size']} PNG, "
        f"{results['image']['bytes_mean']:.0f} bytes on average",
        "",
        "Ceiling (decode PNG bytes + DefectModel.predict, in process)",
        f"  {'layout':<22}{'batch':>6}{'images/s':>11}{'ms/call p50':>13}",
    ]
    for cfg in c["configs"]:
        layout = f"{cfg['processes']} proc x {cfg['threads']} thread(s)"
        lines.append(
            f"  {layout:<22}{cfg['batch']:>6}{cfg['images_per_s']:>11.1f}"
            f"{cfg['call_ms_p50']:>13.2f}"
        )
    best = c["best"]
    lines += [
        f"  ceiling: {c['images_per_s']:.1f} images/s ({best['processes']} proc x "
        f"{best['threads']} thread(s), batch {best['batch']})",
        f"  raw per-image time, batch 1, 1 process x 1 thread: {raw:.2f} ms "
        f"({c['raw_1x1_images_per_s']:.1f} images/s)",
        f"  of which (means, 1 thread): decode {split['decode_ms_mean']:.2f} ms, preprocess "
        f"{split['preprocess_ms_mean']:.2f} ms, network {split['network_ms_mean']:.2f} ms, "
        f"extract_regions {split['regions_ms_mean']:.2f} ms "
        f"({split['flagged']}/{split['images']} images flagged defective)",
        "",
        f"Celery message for one inspection: {msg['message_bytes']} bytes on the wire "
        f"(body {msg['body_bytes']} bytes: task {msg['task']}, args {msg['args']}); "
        f"{'only the inspection id' if msg['id_only'] else 'MORE THAN THE ID'}; "
        f"the image itself is {msg['image_bytes']} bytes",
        f"Web-side per image, in process: validate_image (full decode + sha256) "
        f"{results['web_side']['validate_image_ms_p50']:.2f} ms, store_image (write + fsync) "
        f"{results['web_side']['store_image_ms_p50']:.2f} ms",
        f"Worker task body, in process without Celery (predict_and_route): "
        f"{results['task_body']['total_ms_p50']:.2f} ms, of which the model "
        f"{results['task_body']['model_ms_p50']:.2f} ms and the queries "
        f"{results['task_body']['rest_ms_p50']:.2f} ms; opening a new database connection "
        f"first, as Celery's Django fixup does around every task: "
        f"{results['task_body']['with_new_db_connection_ms_p50']:.2f} ms",
        f"Celery alone, a no-op task round trip (publish, worker, result): "
        f"{results['end_to_end']['celery_noop']['p50_ms']:.2f} ms p50",
        "",
        "End to end (HTTP -> gunicorn gthread x16 -> Django -> Redis -> Celery prefork "
        "2 x 1 thread -> answer)",
        f"  {'stations':>8}{'req/s':>8}{'of ceiling':>12}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'model ms':>10}{'errors':>8}{'DB conn/req':>13}   CPU ms/request "
        "web/worker/client/rest",
    ]
    for lv in e2e:
        cpu = lv["cpu_ms_per_request"]
        lines.append(
            f"  {lv['stations']:>8}{lv['requests_per_s']:>8.1f}{lv['fraction_of_ceiling']:>11.1%} "
            f"{lv['p50_ms']:>8.1f}{lv['p99_ms']:>9.1f}{lv['worker_model_ms_p50'] or 0:>10.2f}"
            f"{lv['errors']:>8}{lv['db_sessions_per_request']:>13.2f}   "
            f"{cpu['web']:.1f} / {cpu['worker']:.1f} / {cpu['client']:.1f}"
            f" / {cpu['rest']:.1f}"
        )
        for sample in lv["error_samples"]:
            lines.append(f"           error: {sample}")
    lines += [
        "",
        "  Where the time goes (mean ms per request; see latency_breakdown):",
        f"  {'stations':>8}" + "".join(f"{phase:>11}" for phase in PHASES) + f"{'total':>9}",
    ]
    for lv in e2e:
        parts = lv["breakdown_ms"]
        lines.append(
            f"  {lv['stations']:>8}"
            + "".join(f"{parts.get(phase, float('nan')):>11.1f}" for phase in PHASES)
            + f"{sum(parts.values()):>9.1f}"
        )
    one = e2e[0]
    lines += [
        f"  latency added at 1 station: p50 {one['p50_ms']:.1f} ms - raw {raw:.2f} ms = "
        f"{results['added_latency_ms_at_1_station']:.1f} ms",
        "",
        "Peer (a naive Flask route: decode + predict inline, nothing stored; gunicorn sync x "
        "cores, 1 torch thread each), the same model and images",
        f"  {'stations':>8}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'Loupe/peer req/s':>18}",
    ]
    for ours, theirs in zip(e2e, results["peer"]["levels"], strict=True):
        ratio = ours["requests_per_s"] / theirs["requests_per_s"] if theirs["requests_per_s"] else 0
        lines.append(
            f"  {theirs['stations']:>8}{theirs['requests_per_s']:>8.1f}{theirs['p50_ms']:>9.1f}"
            f"{theirs['p99_ms']:>9.1f}{theirs['errors']:>8}{ratio:>17.2f}x"
        )
    memory = results["end_to_end"]["memory_mb"]
    lines.append(
        f"  resident memory (MB) after the run: Loupe web {memory['web']}, worker "
        f"{memory['worker']}; peer {results['peer']['memory_mb']}"
    )
    peak = max(lv["requests_per_s"] for lv in e2e)
    peer_peak = max(lv["requests_per_s"] for lv in results["peer"]["levels"])
    lines += [
        f"  peaks: Loupe {peak:.1f} req/s, peer {peer_peak:.1f} req/s: "
        f"{peak / peer_peak if peer_peak else 0:.2f}x",
        "",
        "Markdown:",
        "",
        f"Ceiling: **{c['images_per_s']:.1f} images/s** ({best['processes']} process x "
        f"{best['threads']} thread(s), batch {best['batch']}); raw per-image time (batch 1, "
        f"1 thread): **{raw:.2f} ms**.",
        "",
        "| stations | requests/s | of ceiling | p50 ms | p99 ms | errors | peer requests/s "
        "| peer p50 ms | peer p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lv, peer in zip(e2e, results["peer"]["levels"], strict=True):
        lines.append(
            f"| {lv['stations']} | {lv['requests_per_s']:.1f} | {lv['fraction_of_ceiling']:.1%} "
            f"| {lv['p50_ms']:.1f} | {lv['p99_ms']:.1f} | {lv['errors']} "
            f"| {peer['requests_per_s']:.1f} | {peer['p50_ms']:.1f} | {peer['p99_ms']:.1f} |"
        )
    lines += [
        "",
        f"Latency added over the raw per-image time at 1 station (p50 - raw): "
        f"**{results['added_latency_ms_at_1_station']:.1f} ms**.",
        "",
    ]
    for load in results["load"]:
        line = (
            f"Other load during the {load['window']} ({load['seconds']:.0f} s): "
            f"{load['other_cores']:.2f} cores"
        )
        if load["processes"] or load["other_cores"] > DISTURBED_CORES:
            line = "WARNING: " + line + "; these timings are disturbed"
        lines.append(line)
        lines += [f"  {p}" for p in load["processes"]]
    return "\n".join(lines)
