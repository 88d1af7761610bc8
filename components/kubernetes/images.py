"""Build a workload's image from its context, push it, and hand back the pushed digest.

pulumi_docker 5.2 `docker.Image` builds and pushes in one resource; its `repo_digest` output is
`repository@sha256:...`, unique per push, so the Deployment changes exactly when the image does
and a moved tag can never change what runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.settings.kubernetes import BuildSettings, RegistrySettings


def registry_host(server: str) -> str:
    """'registry.example.com/platform' -> 'registry.example.com' (what `docker login` takes)."""
    return server.split("/", 1)[0]


def image_name(registry: RegistrySettings, build: BuildSettings) -> str:
    return f"{registry.server}/{build.repository}:{build.tag}"


@dataclass(frozen=True)
class AppImageArgs:
    build: BuildSettings
    registry: RegistrySettings
    registry_password: pulumi.Input[str]  # secret


class AppImage(pulumi.ComponentResource):
    image: docker.Image
    reference: pulumi.Output[str]  # repository@sha256:<digest>

    def __init__(self, name: str, args: AppImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:kubernetes:AppImage", name, None, opts)
        self.image = docker.Image(
            name,
            image_name=image_name(args.registry, args.build),
            build=docker.DockerBuildArgs(
                context=args.build.context,
                dockerfile=f"{args.build.context}/{args.build.dockerfile}",
                platform=args.build.platform,
            ),
            registry=docker.RegistryArgs(
                server=registry_host(args.registry.server),
                username=args.registry.username,
                password=pulumi.Output.secret(args.registry_password),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.reference = self.image.repo_digest
        self.register_outputs({"reference": self.reference})
