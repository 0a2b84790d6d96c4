"""Periodic maintenance jobs run by Celery beat on queue `maintenance`.

    schedule   when each job runs (`configure(app, settings)`)
    jobs       the Celery tasks, `evmonitor.maintenance.<job>`: thin wrappers passing `now`
    runner     the jobs as plain calls (tests, the CLI)
    rollups    hourly and daily rollups, in SQL
    stale      stale sessions
    faults     connector faults, offline stations, maintenance flags, availability
    reports    the daily report
    deadletters   ev.deadletter -> the charging-deadletters index
    alerts, days  pure rules; alert_store, indexes: their storage
"""
