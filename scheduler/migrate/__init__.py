"""Moving in from Vercel Cron and cron-job.org: import, verify, compare (issue 14).

    vercel.py            vercel.json / Build Output config.json `crons` -> ImportedJob
    cronjob_org.py       cron-job.org REST API exports -> ImportedJob, credentials -> secrets
    cronjob_schedule.py  cron-job.org schedule sets -> a crontab that fires at the same instants
    model.py             ImportedJob, Finding, ImportResult, ids
    secrets_out.py       naming secret values, writing them (0600), the commands that install them
    toml_out.py          [[jobs]] TOML: render, merge into a config keeping its comments
    verify.py            the seed's endpoint checklist against live endpoints
    compare.py           the parallel run: an old scheduler's log against cronhost's history
    commands.py          argparse glue: `cronhost import`, `verify`, `compare`

Nothing here runs inside the daemon; the CLI is the only caller.
"""
