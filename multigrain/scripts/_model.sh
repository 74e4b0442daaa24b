# MultiGrain's default config for the launchers (path relative to the repository root); sourced by
# scripts/_common.sh when no CONFIG_PATH argument is given.
DEFAULT_CONFIG=config/resnet50_imagenet2012_config.yaml
