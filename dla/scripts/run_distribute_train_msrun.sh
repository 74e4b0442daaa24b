#!/bin/bash
# DLA: runs the same-named script of the repository's scripts/ (usage there) with MODEL_DIR=dla.
MODEL_DIR=$(cd "$(dirname "$0")/.." && pwd) exec bash "$(dirname "$0")/../../scripts/$(basename "$0")" "$@"
