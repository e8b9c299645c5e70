#!/usr/bin/env bash
# Wakes the loop once a day: the reading changes at local midnight.
printf '{"date":"%s"}\n' "$(date +%F)"
