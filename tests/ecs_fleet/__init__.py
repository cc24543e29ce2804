"""Test code: plays ECS's task scheduler and the Application Load Balancer on top of moto.

moto serves the ECS, ELBv2, CloudWatch and SSM APIs over real HTTP, but runs nothing: see ``fleet`` for what this
harness adds, and ``moto_gaps`` for each thing moto cannot represent and how it is covered.
"""

from ecs_fleet.fleet import EcsFleet

__all__ = ["EcsFleet"]
