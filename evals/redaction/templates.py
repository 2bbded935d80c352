"""Templates of the redaction corpus: (language, text with [[SLOT]]s), see generate.py."""

from __future__ import annotations

import json
from typing import Any

TICKETS: list[tuple[str, str]] = [
    # -- English ---------------------------------------------------------------------------
    ("en", "Hi [[PERSON:first]],\n\nSince [[neg:ts]] every call from [[neg:ws]] returns 401 "
           "invalid_api_key. We rotated key [[neg:key]] this morning. The key we use now is "
           "[[SECRET:gateway]] (request [[neg:req]]).\n\nYou can reach me on [[PHONE:US]].\n\n"
           "Thanks,\n[[PERSON]]"),
    ("en", "Hello support,\n\nWe were charged twice for invoice [[neg:invoice]] ([[neg:amount]]"
           "). The charges are [[neg:ch]] and [[neg:ch]]. Card used: [[CARD]]. Please refund "
           "one of them to the same card.\n\nOrder number [[neg:order]], placed [[neg:date_slash]]"
           ".\n\nBest regards,\n[[PERSON]]\n[[EMAIL]]"),
    ("en", "Our integration broke after your release [[neg:version]]. Logs show requests from "
           "[[IP]] failing with 502 after [[neg:latency]]. Our CI used this token: Authorization: "
           "Bearer [[SECRET:bearer]] - please ignore, it is revoked.\n\nCheers,\n[[PERSON:first]]"),
    ("en", "Dear team,\n\nplease update our billing contact to [[EMAIL]] and our phone to "
           "[[PHONE:GB]]. The bank account for SEPA payouts is [[IBAN:GB]].\n\nKind regards,\n"
           "[[PERSON]]\nFinance, Brightpath Ltd"),
    ("en", "Hey, quick one: my colleague [[PERSON:other]] pasted our prod Stripe key "
           "[[SECRET:stripe]] into a Slack thread by accident. Can you confirm nothing on your "
           "side logged it? Subscription [[neg:sub]], customer [[neg:cus]]. Ticket ref "
           "[[neg:linear]]."),
    ("en", "We see timeouts to the gateway from our NAT address [[IP:v4]] and from the IPv6 range "
           "[[IP:v6]]. Trace id [[neg:trace]], model [[neg:model]]. Call me at [[PHONE:US]] if "
           "needed, or order #[[neg:order_short]] will be late."),
    ("en", "Our DB connection string leaked in a support upload: postgres://app:"
           "[[URL_PASSWORD]]@db.northwind.io:5432/prod . Rotate advice welcome. My number: "
           "[[PHONE:IE]]. Cardholder name: [[PERSON]]."),
    # -- German ----------------------------------------------------------------------------
    ("de", "Hallo [[PERSON:first]],\n\nseit [[neg:date_eu]] bekommen wir 429 rate_limited, obwohl "
           "unser Kontingent noch nicht aufgebraucht ist. Workspace [[neg:ws]], API-Key-ID "
           "[[neg:key]]. Rechnung [[neg:invoice]] über [[neg:amount]] ist bezahlt.\n\nBitte "
           "rufen Sie mich unter [[PHONE:DE]] an.\n\nViele Grüße\n[[PERSON]]"),
    ("de", "Sehr geehrte Damen und Herren,\n\nbitte erstatten Sie den doppelt abgebuchten Betrag "
           "auf unser Konto [[IBAN:DE]]. Bestellnummer [[neg:order]].\nAnsprechpartner: "
           "[[PERSON]], Tel. [[PHONE:DE]], E-Mail [[EMAIL]]\n\nMit freundlichen Grüßen\n"
           "[[PERSON:other]]"),
    ("de", "Unser Entwickler hat versehentlich das Passwort: [[SECRET:password]] und den Schlüssel "
           "[[SECRET:openai]] ins Ticket kopiert. Bitte löschen! Version [[neg:version]], "
           "Request [[neg:req]]."),
    ("de", "Guten Tag,\nunser Server [[IP:private]] hinter dem Proxy [[IP:v4]] bekommt seit "
           "Version [[neg:version]] nur noch 503. Auftrag [[neg:order_short]], Trace "
           "[[neg:trace]].\nHandy: [[PHONE:national]]\nGruß, [[PERSON]]"),
    ("de", "Die Kreditkarte [[CARD:mc]] wurde abgelehnt (card_declined), Zahlung [[neg:pi]]. "
           "Bitte stattdessen per Lastschrift von [[IBAN:AT]] einziehen. Kontakt: [[PERSON]] "
           "<[[EMAIL]]>"),
    # -- Spanish ---------------------------------------------------------------------------
    ("es", "Hola,\n\ndespués del mantenimiento de anoche todas nuestras peticiones devuelven 401 "
           "invalid_api_key. Usamos esta clave: [[SECRET:gateway]]\n\n¿Podéis revisarlo? "
           "Nuestro buscador de vuelos está parado.\n\nSaludos,\n[[PERSON]]\nGirasol Viajes"),
    ("es", "Buenos días, me llamo [[PERSON]] y os escribo porque en la factura [[neg:invoice]] "
           "aparece un cargo de [[neg:amount]] que no reconocemos ([[neg:ch]]). Mi teléfono es "
           "[[PHONE:ES]] y mi correo [[EMAIL]].\n\nGracias"),
    ("es", "Estimado equipo:\nos ruego que la devolución se haga a la cuenta [[IBAN:ES]] y no a "
           "la tarjeta [[CARD:visa]]. Pedido nº [[neg:order]] del [[neg:date_slash]].\n"
           "Atentamente,\n[[PERSON]]\nTel.: [[PHONE:national]]"),
    ("es", "Tenemos errores 500 desde la IP [[IP]] con el modelo [[neg:model]]. La contraseña "
           "es [[SECRET:password]] por si necesitáis entrar al panel (ya sé que no debería). "
           "Ticket [[neg:linear]], petición [[neg:req]]."),
    ("es", "Hola [[PERSON:first]], el webhook de Stripe falla con firma inválida. El secreto es "
           "[[SECRET:whsec]] y el evento [[neg:evt]]. Llamadme al [[PHONE:MX]].\nUn saludo,\n"
           "[[PERSON]]"),
    ("es", "Nuestro equipo de México no puede acceder. Sucursal: [[PHONE:national]]. Factura "
           "[[neg:invoice]] pagada con [[neg:last4]]. Versión [[neg:version]]."),
    # -- French ----------------------------------------------------------------------------
    ("fr", "Bonjour [[PERSON:first]],\n\nDepuis le [[neg:date_slash]], nos appels échouent avec "
           "402 payment_required alors que la facture [[neg:invoice]] ([[neg:amount]]) est "
           "réglée. Abonnement [[neg:sub]].\n\nMerci de me rappeler au [[PHONE:FR]].\n\n"
           "Cordialement,\n[[PERSON]]"),
    ("fr", "Bonjour,\nVoici le RIB pour le remboursement : IBAN [[IBAN:FR]]. Le paiement initial "
           "a été fait avec la carte [[CARD]].\nNuméro de commande : [[neg:order]]\n"
           "[[PERSON]] - [[EMAIL]] - [[PHONE:special]]"),
    ("fr", "Notre clé GitHub [[SECRET:github]] a été publiée par erreur dans un ticket précédent "
           "([[neg:linear]]). Pouvez-vous la purger ? Mot de passe : [[SECRET:password]]\n"
           "Merci, [[PERSON]]"),
    ("fr", "Le proxy [[IP:v4]] renvoie des erreurs 504 depuis la version [[neg:version]]. "
           "Latence médiane [[neg:latency]]. Requête [[neg:req]], trace [[neg:trace]]."),
    ("fr", "Madame, Monsieur,\nnotre succursale belge ([[PHONE:BE]]) souhaite payer par "
           "virement depuis [[IBAN:BE]]. Contact : [[EMAIL]]\nBien à vous,\n[[PERSON]]"),
    # -- Portuguese ------------------------------------------------------------------------
    ("pt", "Olá [[PERSON:first]],\n\ndesde ontem recebemos 401 com a chave [[SECRET:gateway]]. "
           "Já geramos outra ([[neg:key]]) mas o erro continua. Request [[neg:req]].\n\n"
           "Meu celular: [[PHONE:BR]]\n\nAtenciosamente,\n[[PERSON]]"),
    ("pt", "Bom dia, fomos cobrados duas vezes na fatura [[neg:invoice]] ([[neg:amount]]), "
           "cobranças [[neg:ch]] e [[neg:ch]]. Cartão [[CARD:mc2]]. Contato: [[EMAIL]], "
           "telefone [[PHONE:PT]].\nObrigado, [[PERSON]]"),
    ("pt", "Por favor façam o reembolso para o IBAN [[IBAN:PT]]. Encomenda [[neg:order]], "
           "data [[neg:date_eu]].\nCumprimentos,\n[[PERSON]]"),
    ("pt", "O servidor [[IP:private]] não alcança o gateway; do nosso lado o IPv6 é "
           "[[IP:v6short]]. Senha do painel: [[SECRET:password]]. Versão [[neg:version]], "
           "trace [[neg:trace]]."),
    ("pt", "Nosso token do Linear [[SECRET:linear]] e a chave da AWS [[SECRET:aws]] vazaram num "
           "print. Podem verificar os logs? Issue [[neg:linear]], commit [[neg:short_sha]]."),
    # -- Italian ---------------------------------------------------------------------------
    ("it", "Buongiorno [[PERSON:first]],\n\nda [[neg:date_eu]] riceviamo errori 429 sul "
           "workspace [[neg:ws]]. Chiave API [[neg:key]]. Potete richiamarmi al "
           "[[PHONE:IT]]?\n\nCordiali saluti,\n[[PERSON]]"),
    ("it", "Salve, vorremmo il rimborso sull'IBAN [[IBAN:IT]] invece che sulla carta [[CARD]]. "
           "Fattura [[neg:invoice]], ordine [[neg:order]].\nGrazie,\n[[PERSON]]\n[[EMAIL]]"),
    ("it", "Il nostro sviluppatore ha incollato la chiave Anthropic [[SECRET:anthropic]] nel "
           "ticket. Modello [[neg:model]], richiesta [[neg:req]]. Tel. [[PHONE:national]]"),
    ("it", "Gli indirizzi [[IP]] e [[IP:private]] ricevono 403. Versione [[neg:version]], "
           "commit [[neg:sha]]. Mi chiamo [[PERSON]], cellulare [[PHONE:IT]]."),
    ("it", "Gentile [[PERSON]],\nil pagamento [[neg:pi]] con carta [[CARD:amex]] è stato "
           "rifiutato. Importo [[neg:amount]].\nDistinti saluti"),
    # -- Dutch -----------------------------------------------------------------------------
    ("nl", "Hoi [[PERSON:first]],\n\nsinds [[neg:date_eu]] krijgen we 401 invalid_api_key op "
           "workspace [[neg:ws]]. Onze sleutel: [[SECRET:gw]]\n\nBel me op [[PHONE:NL]].\n\n"
           "Met vriendelijke groet,\n[[PERSON]]"),
    ("nl", "Graag het bedrag terugstorten op [[IBAN:NL]]. Factuur [[neg:invoice]], "
           "bestelling [[neg:order]]. Betaald met [[CARD:visa]].\nGroeten,\n[[PERSON]]\n"
           "[[EMAIL]]"),
    ("nl", "Onze webhook faalt vanaf [[IP:v4]]. Het wachtwoord is [[SECRET:password]] voor de "
           "staging omgeving. Versie [[neg:version]], request [[neg:req]]."),
    ("nl", "Beste,\nonze Belgische vestiging ([[PHONE:BE]]) ziet dezelfde 429 fouten. "
           "Trace [[neg:trace]], model [[neg:model]].\nBedankt,\n[[PERSON]]"),
    ("nl", "Mijn naam is [[PERSON]]. Het Slack token [[SECRET:slack]] is per ongeluk gedeeld in "
           "[[neg:linear]]. Tel: [[PHONE:special]]"),
]

LOGS: list[tuple[str, str]] = [
    ("en", "[[neg:ts]] INFO gateway request_id=[[neg:req]] ws=[[neg:ws]] key_id=[[neg:key]] "
           "client_ip=[[IP]] status=401 error=invalid_api_key latency=[[neg:latency]]"),
    ("en", "[[neg:ts]] WARN auth rejected header=\"Authorization: Bearer [[SECRET:bearer]]\" "
           "request_id=[[neg:req]] from=[[IP:v6]]"),
    ("en", "[[neg:ts]] ERROR billing stripe call failed api_key=[[SECRET:stripe]] "
           "charge=[[neg:ch]] invoice=[[neg:in]] amount=4999 currency=eur"),
    ("en", "[[neg:ts]] DEBUG db connect url=postgresql://sleuth:[[URL_PASSWORD]]@[[IP:private]]:5432/"
           "sleuth pool=5 version=[[neg:version]]"),
    ("en", "[[neg:ts]] INFO upstream=anthropic model=[[neg:model]] prompt_tokens=1834 "
           "completion_tokens=212 request_id=[[neg:req]] trace_id=[[neg:trace]]"),
    ("en", "[[neg:ts]] ERROR webhook signature mismatch secret=[[SECRET:whsec]] event=[[neg:evt]]"
           " remote_addr=[[IP:v4]]"),
    ("en", "[[neg:ts]] INFO notify customer email=[[EMAIL]] phone=[[PHONE:e164]] "
           "ticket=[[neg:linear]]"),
    ("en", "[[neg:ts]] WARN github deploy token=[[SECRET:github]] sha=[[neg:sha]] "
           "pr=[[neg:pr]] node=[[neg:node]]"),
    ("en", "[[neg:ts]] INFO refund created re=[[neg:re]] charge=[[neg:ch]] pm=[[neg:tok]] "
           "amount=[[neg:amount]]"),
    ("en", "[[neg:ts]] ERROR aws s3 upload failed access_key=[[SECRET:aws]] "
           "secret_access_key=[[SECRET:password]] bucket=sleuth-exports"),
    ("en", "[[neg:ts]] DEBUG outbound headers {\"x-api-key\": \"[[SECRET:anthropic]]\", "
           "\"anthropic-version\": \"2023-06-01\"} request_id=[[neg:req]]"),
    ("en", "[[neg:ts]] INFO x-forwarded-for=\"[[IP:v4]], [[IP:private]]\" path=/v1/chat "
           "status=200 latency=[[neg:latency]] uuid=[[neg:uuid]]"),
    ("en", "[[neg:ts]] WARN linear sync failed token=[[SECRET:linear]] issue=[[neg:linear]] "
           "job=[[neg:uuid]]"),
    ("en", "[[neg:ts]] ERROR redis connection refused url=redis://:[[URL_PASSWORD]]@cache:6379/0"
           " retry=3"),
    ("en", "[[neg:ts]] INFO jwt session=[[SECRET:jwt]] user_id=[[neg:cus]] "
           "ip=[[IP:v6short]]"),
    ("en", "[[neg:ts]] INFO payment_method=[[neg:tok]] card_last4=4242 exp=12/29 "
           "customer=[[neg:cus]] sub=[[neg:sub]] tracking=[[neg:tracking]]"),
    ("de", "[[neg:ts]] WARN Anmeldung fehlgeschlagen benutzer=[[EMAIL]] "
           "passwort=\"[[SECRET:password]]\" ip=[[IP]]"),
    ("es", "[[neg:ts]] ERROR pago rechazado tarjeta=[[CARD]] pedido=[[neg:order]] "
           "importe=[[neg:amount]]"),
    ("fr", "[[neg:ts]] INFO rappel client tel=[[PHONE:FR]] facture=[[neg:invoice]] "
           "ts_unix=[[neg:unix]]"),
    ("en", "[[neg:ts]] DEBUG deploy key loaded\n[[SECRET:private_key]]\nhost=[[IP:private]] "
           "port=[[neg:port]]"),
]


def _evidence(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False)


EVIDENCE: list[tuple[str, str]] = [
    ("en", _evidence({"source": "stripe", "ref": "[[neg:ch]]", "title": "Charge succeeded",
                      "data": {"customer": "[[neg:cus]]", "invoice": "[[neg:in]]",
                               "billing_details": {"name": "[[PERSON]]", "email": "[[EMAIL]]",
                                                   "phone": "[[PHONE:e164]]"},
                               "amount": 4999, "payment_intent": "[[neg:pi]]"}})),
    ("en", _evidence({"source": "clickhouse", "ref": "timeline:[[neg:ws]]:[[neg:ts]]",
                      "summary": "412 x 401 invalid_api_key from [[IP]] with key [[neg:key]]",
                      "data": {"request_id": "[[neg:req]]", "gateway_version": "[[neg:version]]",
                               "api_key_id": "[[neg:key]]", "client_ip": "[[IP:v6]]"}})),
    ("en", _evidence({"source": "github", "ref": "[[neg:sha]]",
                      "title": "Release [[neg:version]]", "data": {
                          "pr": "[[neg:pr]]", "node_id": "[[neg:node]]",
                          "body": "Fix retry; rotated leaked token [[SECRET:github_pat]]"}})),
    ("en", _evidence({"source": "linear", "ref": "[[neg:linear]]",
                      "title": "Customer reports double charge",
                      "data": {"id": "[[neg:uuid]]", "description":
                               "Customer [[PERSON]] ([[EMAIL]]) was charged twice, card "
                               "[[CARD]], refund to [[IBAN]]."}})),
    ("de", _evidence({"source": "stripe", "ref": "[[neg:in]]", "title": "Rechnung offen",
                      "data": {"customer_name": "[[PERSON]]", "customer_email": "[[EMAIL]]",
                               "iban": "[[IBAN:DE]]", "number": "[[neg:invoice]]",
                               "amount_due": "[[neg:amount]]"}})),
    ("es", _evidence({"source": "clickhouse", "ref": "top_errors:[[neg:ws]]",
                      "summary": "401 invalid_api_key x 96; última clave usada "
                                 "[[SECRET:gateway]]", "data": {"first_seen": "[[neg:ts]]",
                                                                 "ip": "[[IP:v4]]"}})),
    ("fr", _evidence({"source": "stripe", "ref": "[[neg:sub]]", "title": "Abonnement impayé",
                      "data": {"name": "[[PERSON]]", "phone": "[[PHONE:FR]]",
                               "latest_invoice": "[[neg:in]]", "last4": "4242"}})),
    ("pt", _evidence({"source": "statuspage", "ref": "[[neg:uuid]]", "title":
                      "Incidente resolvido", "summary": "Contato do cliente: [[EMAIL]], "
                      "[[PHONE:BR]]; versão [[neg:version]]"})),
    ("it", _evidence({"source": "docs", "ref": "guides/keys.md", "summary":
                      "Esempio copiato dal cliente: curl -H 'Authorization: Bearer "
                      "[[SECRET:bearer]]' https://api.example.com/v1/chat",
                      "data": {"model": "[[neg:model]]", "request": "[[neg:req]]"}})),
    ("nl", _evidence({"source": "stripe", "ref": "[[neg:re]]", "title": "Terugbetaling",
                      "data": {"charge": "[[neg:ch]]", "iban": "[[IBAN:NL]]",
                               "billing_email": "[[EMAIL]]", "amount": 1250}})),
    ("en", _evidence({"source": "clickhouse", "ref": "scope:[[neg:ws]]", "summary":
                      "Errors only from [[IP:private]] and [[IP:v4]]; other clients fine",
                      "data": {"requests": 18234, "error_rate": 0.4123,
                               "window": "[[neg:ts]]"}})),
    ("en", _evidence({"source": "github", "ref": "[[neg:short_sha]]", "title": "Config change",
                      "data": {"diff": "- OPENAI_API_KEY=[[SECRET:openai]]\n+ OPENAI_API_KEY="
                                       "${OPENAI_API_KEY}", "author": "[[EMAIL]]"}})),
    ("de", _evidence({"source": "linear", "ref": "[[neg:linear]]", "title":
                      "Rückruf gewünscht", "data": {"description": "Kunde [[PERSON]] bittet "
                      "um Rückruf unter [[PHONE:DE]] wegen Auftrag [[neg:order_short]]."}})),
    ("en", _evidence({"source": "stripe", "ref": "[[neg:evt]]", "title": "Webhook delivery failed",
                      "data": {"endpoint": "https://hooks.acmecorp.com/stripe",
                               "secret": "[[SECRET:whsec]]", "attempts": 3,
                               "last_error_at": "[[neg:ts]]"}})),
]

# Held out: written after the recognizers were tuned on the templates above, and scored
# separately so the figures are not only the ones the patterns were fitted to.
HOLDOUT: list[tuple[str, str, str]] = [
    ("ticket", "en", "From: [[PERSON]] <[[EMAIL]]>\nSubject: keys not working\n\nWe put "
                     "STRIPE_SECRET_KEY=[[SECRET:stripe]] and GATEWAY_KEY=[[SECRET:gateway]] "
                     "in our .env, then got 401 on [[neg:req]]. Ring me: "
                     "[[=PHONE|+1 (415) 555-0132]] or office [[PHONE:US]] ext. 23."),
    ("ticket", "en", "Can you whitelist [[IP:v4]]:8443 and [[IP:private]]? Our CIDR is "
                     "[[=IP|10.20.0.0/16]]. Gateway [[neg:version]] on build [[neg:order_short]]. "
                     "mailto:[[EMAIL]]"),
    ("ticket", "en", "I cloned with https://[[SECRET:github]]@github.com/acme/gw-client.git and "
                     "now the token is in our CI logs (job [[neg:uuid]]). Also the YAML had\n"
                     "  password: \"[[SECRET:password]]\"\n  user: deploy\nSorry! - [[PERSON]]"),
    ("ticket", "de", "Moin,\nunsere Hotline [[PHONE:DE]] und die Zentrale [[PHONE:AT]] sind "
                     "erreichbar. Rechnungsnummer [[neg:invoice]], Betrag [[neg:amount]], "
                     "Lieferung am [[neg:date_eu]]. IBAN: [[IBAN:CH]]\nLG [[PERSON:first]]"),
    ("ticket", "de", "Zugangsdaten für Staging: https://admin:[[URL_PASSWORD]]@staging.acme-"
                     "logistik.de/ - Kennwort für das Portal: [[SECRET:password]]. Ticket "
                     "[[neg:linear]]."),
    ("ticket", "es", "Buenas tardes, soy [[PERSON]] de Tienda Luna. Nos cobraron con la tarjeta "
                     "[[CARD:amex]] el [[neg:date_slash]]. Número de pedido [[neg:order]]. "
                     "WhatsApp: [[PHONE:MX]]"),
    ("ticket", "es", "La clave de AWS [[SECRET:aws]] aparece en el log [[neg:req]] junto con "
                     "la IP [[IP:v6]]. ¿Podéis borrarla? Modelo [[neg:model]]."),
    ("ticket", "fr", "Bonsoir, je suis joignable au [[PHONE:FR]] ou par mail ([[EMAIL]]). La "
                     "commande [[neg:order]] du [[neg:date_slash]] a été débitée deux fois "
                     "([[neg:amount]]).\nAmicalement,\n[[PERSON]]"),
    ("ticket", "fr", "Le jeton [[SECRET:openai]] est partagé entre nos équipes; version "
                     "[[neg:version]], trace [[neg:trace]], adresse [[IP:v4]]."),
    ("ticket", "pt", "Oi, meu nome é [[PERSON]]. Pix não funcionou, paguei com o cartão "
                     "[[CARD:visa]]. Fone: [[PHONE:BR]]. Fatura [[neg:invoice]]."),
    ("ticket", "pt", "A chave [[SECRET:anthropic]] foi colada por engano no chamado "
                     "[[neg:linear]]. Servidor [[IP:private]], commit [[neg:sha]]."),
    ("ticket", "it", "Salve, sono [[PERSON:first]] dell'ufficio acquisti. Il bonifico partirà "
                     "da [[IBAN:IT]]. Ordine [[neg:order]], fattura [[neg:invoice]], "
                     "telefono [[PHONE:IT]]."),
    ("ticket", "nl", "Goedemiddag, onze IBAN is gewijzigd naar [[IBAN:NL]]. Factuur "
                     "[[neg:invoice]] graag daarop. Mobiel: [[PHONE:NL]]\nGroeten, [[PERSON]]"),
    ("log", "en", "[[neg:ts]] ERROR config dump: {'db_password': '[[SECRET:password]]', "
                  "'redis_url': 'redis://default:[[URL_PASSWORD]]@[[IP:private]]:6379', "
                  "'workers': 4}"),
    ("log", "en", "[[neg:ts]] INFO curl -s -H \"Authorization: Bearer [[SECRET:bearer]]\" "
                  "https://gw.example.com/v1/models request_id=[[neg:req]]"),
    ("log", "en", "[[neg:ts]] WARN slow upstream ip=[[IP:v6short]] latency=[[neg:latency]] "
                  "model=[[neg:model]] tokens=[[neg:amount]] key=[[neg:key]]"),
    ("log", "en", "[[neg:ts]] INFO sms sent to=[[PHONE:e164]] template=refund_issued "
                  "refund=[[neg:re]] trace=[[neg:trace]]"),
    ("log", "en", "[[neg:ts]] ERROR github api 401 token=[[SECRET:github_pat]] "
                  "repo=acme/gateway sha=[[neg:short_sha]]"),
    ("log", "de", "[[neg:ts]] INFO Rückruf angefordert von [[EMAIL]] unter [[PHONE:special]] "
                  "auftrag=[[neg:order_short]]"),
    ("evidence", "en", _evidence({"source": "stripe", "ref": "[[neg:cus]]", "data": {
        "email": "[[EMAIL]]", "address": {"line1": "221B Baker Street", "city": "London"},
        "invoice_settings": {"default_payment_method": "[[neg:tok]]"},
        "metadata": {"workspace": "[[neg:ws]]", "phone": "[[PHONE:GB]]"}}})),
    ("evidence", "en", _evidence({"source": "github", "ref": "[[neg:sha]]", "data": {
        "message": "Remove leaked key [[SECRET:gateway]] from fixtures",
        "committer": "[[PERSON]] <[[EMAIL]]>", "pr": "[[neg:pr]]"}})),
    ("evidence", "es", _evidence({"source": "clickhouse", "ref": "quota:[[neg:ws]]",
                                  "summary": "Cuota agotada el [[neg:ts]]; IP de origen "
                                             "[[IP]]", "data": {"used": 1000000,
                                                                "limit": 1000000}})),
    ("evidence", "fr", _evidence({"source": "linear", "ref": "[[neg:linear]]", "data": {
        "description": "Client [[PERSON]] ([[PHONE:FR]]) signale un double débit sur "
                       "[[CARD]]. Remboursement vers [[IBAN:FR]]."}})),
]
