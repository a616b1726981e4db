"""The Stripe webhook route: POST /api/stripe/webhook, verified on the raw body and applied once."""

from __future__ import annotations

import asyncio
import logging

from fastapi import Request
from fastapi.responses import JSONResponse
from nicegui import app

from ..services import stripe_gateway
from ..services.errors import DomainError, NotFoundError

logger = logging.getLogger(__name__)


def register_stripe_webhook() -> None:
    @app.post('/api/stripe/webhook', include_in_schema=False)
    async def stripe_webhook(request: Request) -> JSONResponse:
        payload = await request.body()  # the exact bytes Stripe signed
        signature = request.headers.get('stripe-signature')
        try:
            outcome = await asyncio.to_thread(stripe_gateway.handle_webhook, payload, signature)
        except NotFoundError:
            return JSONResponse({'detail': 'Not found'}, status_code=404)
        except stripe_gateway.InvalidWebhookError as error:
            return JSONResponse({'detail': str(error)}, status_code=400)
        except DomainError as error:
            # Stripe retries a failed delivery for days, so a rule that refused the event gets a second look.
            logger.error('Stripe webhook event rejected: %s', error)
            return JSONResponse({'detail': str(error)}, status_code=422)
        return JSONResponse({'received': True, 'outcome': outcome})
