"""``manage.py campaign run|watch|stop``: start a campaign and follow its progress.

    manage.py campaign run --name nightly-rxmer --test DS_OFDM_RXMER_PER_SUBCAR --cmts cmts-01
    manage.py campaign watch <campaign_id>
    manage.py campaign stop <campaign_id>

The request is checked exactly as the API checks it. Following draws a progress bar until
the run ends (Ctrl-C stops following, not the campaign), then prints the worst modems.
"""

from __future__ import annotations

import json
import time

from django.core.management.base import BaseCommand, CommandError, CommandParser

from campaigns import services
from campaigns.api.serializers import CampaignStartSerializer
from campaigns.models import Campaign, CampaignRun, RunState

BAR_WIDTH = 30


class Command(BaseCommand):
    help = "Start a PNM campaign over a footprint of modems, or follow or stop one."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="command", required=True)
        run = commands.add_parser("run", help="create a campaign, start it now, follow it")
        run.add_argument("--name", required=True)
        run.add_argument("--test", required=True, help="a PNM test or a multi_* family")
        run.add_argument("--parameters", default="{}", help="the test's parameters, JSON")
        run.add_argument("--duration-s", type=int, help="multi families only")
        run.add_argument("--sample-interval-s", type=int, help="multi families only")
        target = run.add_mutually_exclusive_group(required=True)
        target.add_argument("--modems", help="comma-separated ids or MAC addresses")
        target.add_argument("--all", action="store_true", help="every registered modem")
        target.add_argument("--filter", action="store_true", help="select by the options below")
        for key in services.TARGET_FILTERS:
            run.add_argument(f"--{key.replace('_', '-')}", action="append", dest=key)
        run.add_argument("--max-in-flight", type=int)
        run.add_argument("--max-per-cmts", type=int)
        run.add_argument("--retries", type=int)
        run.add_argument("--mer-threshold-db", type=float)
        for name, helptext in (("watch", "follow its latest run"), ("stop", "cancel its run")):
            command = commands.add_parser(name, help=helptext)
            command.add_argument("campaign_id")
        for command in (run, commands.choices["watch"]):
            command.add_argument("--every", type=float, default=1.0, help="seconds per redraw")
            command.add_argument("--no-follow", action="store_true", help="return at once")

    def handle(self, *args: object, **options: object) -> None:
        command = options["command"]
        if command == "run":
            campaign = self._create(options)
            self.stdout.write(f"campaign {campaign.campaign_id} ({campaign.name}) started")
        else:
            found = Campaign.objects.filter(campaign_id=options["campaign_id"]).first()
            if found is None:
                raise CommandError(f"no campaign {options['campaign_id']}")
            campaign = found
        if command == "stop":
            stopped = [run.run_id for run in campaign.runs.all() if services.stop_run(run)]
            self.stdout.write(f"stopped: {', '.join(stopped) or 'nothing was running'}")
            return
        run = campaign.runs.order_by("-pk").first()
        if run is None:
            raise CommandError("this campaign has no run yet")
        if not options["no_follow"]:
            self._follow(run, float(options["every"]))  # type: ignore[arg-type]

    def _create(self, options: dict) -> Campaign:
        try:
            parameters = json.loads(options["parameters"])
        except json.JSONDecodeError as exc:
            raise CommandError(f"--parameters is not JSON: {exc}") from None
        if options["modems"]:
            target: dict = {"modems": [part.strip() for part in options["modems"].split(",")]}
        elif options["all"]:
            target = {"all": True}
        else:
            target = {
                "filter": {key: options[key] for key in services.TARGET_FILTERS if options[key]}
            }
        body = {"name": options["name"], "test": options["test"], "parameters": parameters}
        body["target"] = target
        for key in (
            "duration_s", "sample_interval_s", "max_in_flight", "max_per_cmts", "retries",
            "mer_threshold_db",
        ):  # fmt: skip
            if options[key] is not None:
                body[key] = options[key]
        start = CampaignStartSerializer(data=body)
        if not start.is_valid():
            raise CommandError(f"refused: {json.dumps(start.errors)}")
        return start.save()

    def _follow(self, run: CampaignRun, every_s: float) -> None:
        try:
            while True:
                run.refresh_from_db()
                counts = services.progress(run)
                self.stdout.write("\r" + _bar(counts) + " ", ending="")
                self.stdout.flush()
                if run.state != RunState.RUNNING:
                    break
                time.sleep(every_s)
        except KeyboardInterrupt:
            self.stdout.write("\nno longer following; the campaign goes on")
            return
        self.stdout.write(f"\nrun {run.run_id} {run.state}: {counts.line()}")
        for reason, count in (counts.failed_by_class + counts.skipped_by_reason).most_common():
            self.stdout.write(f"  {reason}: {count}")
        worst = services.worst(run, 5)
        if worst:
            self.stdout.write(f"worst {len(worst)} by {worst[0].metric}:")
            for item in worst:
                self.stdout.write(f"  {item.mac_address} {item.cmts or '-'} {item.value:.2f}")


def _bar(counts: services.Progress) -> str:
    share = counts.settled / counts.planned if counts.planned else 1.0
    filled = round(share * BAR_WIDTH)
    eta = counts.eta_s()
    return (
        f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {counts.settled}/{counts.planned} "
        f"done {counts.done} failed {counts.failed} skipped {counts.skipped} "
        f"| {counts.rate():.1f}/s ETA {'-' if eta is None else f'{eta:.0f} s'}"
    )
