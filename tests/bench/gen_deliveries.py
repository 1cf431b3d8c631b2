#!/usr/bin/env python3
"""Generate realistic Firehose / EventBridge deliveries of CloudTrail for the newtermsd benchmark.

What it writes (into --out, default tests/bench/out/):
  firehose_eb.ndjson    one Firehose HTTP-endpoint delivery body per line; each of its 500 records is the
                        base64 of an EventBridge event ("AWS API Call via CloudTrail") wrapping one record
  firehose_bare.ndjson  same, each record a bare CloudTrail record (Firehose message extraction output)
  firehose_cwl.ndjson   same 500 CloudTrail records per delivery, but as CloudWatch Logs subscription
                        messages: 10 Firehose records, each base64(gzip(DATA_MESSAGE with 50 logEvents))
  eventbridge.ndjson    single EventBridge events, one per line, for POST /v1/eventbridge
  firehose_mixb.ndjson  Mix B (issue 14): 500 EventBridge-wrapped records per delivery, pretty separators
                        (`", "`, `": "`), 1% candidates from four principals (organizations ListAccounts /
                        DescribeOrganization, iam GetAccountSummary), 10% iam.amazonaws.com reads the rule does
                        not list (GetRole, ListRoles: Terraform, AWS Config, scanners), the rest sts / ec2 / kms
                        / s3 / logs / lambda / ssm / secretsmanager / monitoring; AssumeRole responses carry
                        long session tokens and many user agents say `organizations.list-accounts`.
  manifest.json         counts the driver checks the service against: records and rule candidates per
                        body, the distinct (cloud.account.id, user.name) pairs the candidates carry
                        (= the alerts a fresh Redis must produce), mean record sizes.

How the traffic is made: a fixed mix of CloudTrail event kinds weighted roughly like a busy AWS
organisation (S3 data events, KMS, STS, EC2 Describe*, SSM, Secrets Manager, Lambda, DynamoDB, CloudWatch
Logs, ...), each ~1.6 KB compact JSON with the fields real records carry (tlsDetails, userAgent strings,
sessionContext, resources, requestParameters). Exactly CANDIDATES_PER_BODY records per 500 (1%) satisfy
rule 444c8fad (organizations/iam account discovery, success, literal source IP, no AWSService actor, not
from the console) and come from a handful of repeat principals. Another ~4% are near misses that the raw-
byte prefilter cannot throw away: the same eventSource and often the same eventName, but an errorCode, a
service-hostname sourceIPAddress, an AWSService actor, sessionCredentialFromConsole "true", or an action the
rule does not list (iam ListPolicies vs organizations ListPolicies, sso ListAccounts). Most noise records
mention "iam" (every assumed-role ARN does) and some mention "organizations"/"ListAccounts" in values, so a
prefilter that keys on loose substrings gets no free pass. The output is deterministic for a given --seed.
"""
import argparse
import base64
import gzip
import json
import os
import random
import sys
import time
import uuid

RECORDS_PER_BODY = 500
CANDIDATES_PER_BODY = 5
CWL_RECORDS_PER_MESSAGE = 50

REGIONS = ["us-east-1", "us-east-1", "us-east-1", "eu-west-1", "eu-west-1", "us-west-2", "ap-southeast-2",
           "eu-central-1"]
ACCOUNTS = ["111122223333", "444455556666", "777788889999", "210987654321", "123456789012", "998877665544"]
MGMT_ACCOUNT = "111122223333"

CLI_UA = ("aws-cli/2.15.{m} Python/3.11.6 Linux/5.10.205-195.807.amzn2.x86_64 exe/x86_64.amzn.2 "
          "prompt/off command/{cmd}")
BOTO_UA = ("Boto3/1.34.{m} md/Botocore#1.34.{m} ua/2.0 os/linux#5.10.219-208.866.amzn2.x86_64 "
           "md/arch#x86_64 lang/python#3.12.3 md/pyimpl#CPython exec-env/AWS_Lambda_python3.12 cfg/retry-mode#legacy "
           "Botocore/1.34.{m}")
SDK_JAVA_UA = ("aws-sdk-java/2.25.{m} Linux/5.10.215-203.850.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/17.0.11+9-LTS "
               "Java/17.0.11 vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/legacy")
SDK_GO_UA = "aws-sdk-go-v2/1.26.{m} os/linux lang/go#1.22.2 md/GOOS#linux md/GOARCH#amd64 api/ec2#1.156.{m}"
CONSOLE_UA = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/124.0.0.0 Safari/537.36")
TF_UA = ("APN/1.0 HashiCorp/1.0 Terraform/1.8.{m} (+https://www.terraform.io) terraform-provider-aws/5.49.0 "
         "(+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.26.1 os/linux lang/go#1.22.2")


class Gen:
    """All randomness goes through self.r so a seed reproduces the corpus byte for byte."""

    def __init__(self, seed, now_s):
        self.r = random.Random(seed)
        self.now_s = now_s
        # Repeat principals: (kind, account, name). Workloads are assumed roles; humans IAM users or SSO roles.
        self.roles = [(a, n) for a in ACCOUNTS for n in
                      ("app-backend-task-role", "lambda-ingest-exec", "eks-node-group-role", "ci-deploy",
                       "DatadogIntegrationRole", "AWSReservedSSO_ReadOnlyAccess_5f1a2b3c4d5e6f70")]
        self.users = [(a, n) for a in ACCOUNTS[:3] for n in ("jenkins", "alice.ops", "backup-agent")]
        # The few principals that run account discovery (ordered, reused in every body).
        self.discoverers = [
            ("IAMUser", MGMT_ACCOUNT, "alice.ops"),
            ("AssumedRole", MGMT_ACCOUNT, "OrgAuditRole"),
            ("AssumedRole", "444455556666", "AWSReservedSSO_AdministratorAccess_8c2d9e0f1a2b3c4d"),
            ("AssumedRole", "777788889999", "cspm-scanner"),
            ("IAMUser", "210987654321", "legacy-admin"),
            ("AssumedRole", MGMT_ACCOUNT, "landing-zone-automation"),
        ]

    # ---- small helpers ------------------------------------------------------------------------
    def hexs(self, n):
        return "".join(self.r.choice("0123456789abcdef") for _ in range(n))

    def uid(self):
        return str(uuid.UUID(int=self.r.getrandbits(128), version=4))

    def akid(self, temp=True):
        return ("ASIA" if temp else "AKIA") + "".join(self.r.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
                                                       for _ in range(16))

    def pid(self, prefix):
        return prefix + "".join(self.r.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(17))

    def ip(self):
        c = self.r.random()
        if c < 0.08:
            return "2600:1f18:%x:%x::%x" % (self.r.randrange(65536), self.r.randrange(65536),
                                             self.r.randrange(65536))
        return "%d.%d.%d.%d" % (self.r.choice([3, 18, 34, 35, 44, 52, 54, 100, 198, 203]),
                                self.r.randrange(256), self.r.randrange(256), self.r.randrange(1, 255))

    def when(self):
        t = self.now_s - self.r.randrange(0, 600)
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))

    def tls(self, host):
        return {"tlsVersion": "TLSv1.3" if self.r.random() < 0.7 else "TLSv1.2",
                "cipherSuite": self.r.choice(["TLS_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256"]),
                "clientProvidedHostHeader": host}

    def ua(self, cmd="s3api.get-object"):
        f = self.r.choice([CLI_UA, BOTO_UA, BOTO_UA, SDK_JAVA_UA, SDK_GO_UA, TF_UA])
        return f.format(m=self.r.randrange(10, 99), cmd=cmd)

    def assumed(self, account, role, session=None, invoked_by=None):
        session = session or self.r.choice(["botocore-session-%d" % self.r.randrange(10**9, 10**10),
                                            "i-0%s" % self.hexs(16), "aws-go-sdk-%d" % self.r.randrange(10**18),
                                            "GitHubActions-%d" % self.r.randrange(10**9)])
        rpid = self.pid("AROA")
        ident = {"type": "AssumedRole", "principalId": "%s:%s" % (rpid, session),
                 "arn": "arn:aws:sts::%s:assumed-role/%s/%s" % (account, role, session),
                 "accountId": account, "accessKeyId": self.akid(),
                 "sessionContext": {
                     "sessionIssuer": {"type": "Role", "principalId": rpid,
                                       "arn": "arn:aws:iam::%s:role/%s" % (account, role),
                                       "accountId": account, "userName": role},
                     "attributes": {"creationDate": self.when(), "mfaAuthenticated": "false"}}}
        if invoked_by:
            ident["invokedBy"] = invoked_by
        return ident

    def iam_user(self, account, name):
        return {"type": "IAMUser", "principalId": self.pid("AIDA"),
                "arn": "arn:aws:iam::%s:user/%s" % (account, name), "accountId": account,
                "accessKeyId": self.akid(temp=False), "userName": name}

    def aws_service(self, svc):
        return {"type": "AWSService", "invokedBy": svc}

    def some_actor(self):
        if self.r.random() < 0.85:
            a, n = self.r.choice(self.roles)
            return a, self.assumed(a, n)
        a, n = self.r.choice(self.users)
        return a, self.iam_user(a, n)

    def base(self, source, name, ident, account, region=None, src_ip=None, ua=None, read_only=True,
             management=True, event_type="AwsApiCall"):
        region = region or self.r.choice(REGIONS)
        rec = {"eventVersion": self.r.choice(["1.08", "1.09", "1.10", "1.11"]), "userIdentity": ident,
               "eventTime": self.when(), "eventSource": source, "eventName": name, "awsRegion": region,
               "sourceIPAddress": src_ip or self.ip(), "userAgent": ua or self.ua(),
               "requestParameters": None, "responseElements": None,
               "requestID": self.uid(), "eventID": self.uid(), "readOnly": read_only,
               "eventType": event_type, "managementEvent": management, "recipientAccountId": account,
               "eventCategory": "Management" if management else "Data"}
        if source.endswith(".amazonaws.com") and event_type == "AwsApiCall":
            host = source.replace(".amazonaws.com", ".%s.amazonaws.com" % region)
            rec["tlsDetails"] = self.tls(host)
        return rec

    # ---- noise kinds ------------------------------------------------------------------------------
    def s3_object(self):
        account, ident = self.some_actor()
        bucket = self.r.choice(["prod-data-lake-%s" % account, "app-assets-%s" % account,
                                "aws-cloudtrail-logs-%s-%s" % (MGMT_ACCOUNT, self.hexs(8)),
                                "org-reports-%s" % account])
        name = self.r.choice(["GetObject", "GetObject", "GetObject", "PutObject", "HeadObject"])
        key = self.r.choice([
            "events/dt=2026-11-28/hour=%02d/part-%05d-%s.parquet" % (
                self.r.randrange(24), self.r.randrange(99999), self.hexs(8)),
            "AWSLogs/%s/CloudTrail/us-east-1/2026/11/28/%s_CloudTrail_us-east-1_20261128T%02d%02dZ.json.gz"
            % (account, account, self.r.randrange(24), self.r.randrange(60)),
            # values that name the rule's provider and actions, to keep substring prefilters honest
            "exports/organizations.amazonaws.com/ListAccounts-%s.json" % self.hexs(12),
        ])
        region = self.r.choice(REGIONS)
        rec = self.base("s3.amazonaws.com", name, ident, account, region=region, read_only=name != "PutObject",
                        management=False, ua="[%s]" % self.r.choice([CLI_UA, SDK_JAVA_UA]).format(
                            m=self.r.randrange(10, 99), cmd="s3.cp"))
        rec["requestParameters"] = {"bucketName": bucket, "Host": "%s.s3.%s.amazonaws.com" % (bucket, region),
                                    "key": key, "x-id": name}
        rec["additionalEventData"] = {"SignatureVersion": "SigV4", "CipherSuite": "TLS_AES_128_GCM_SHA256",
                                      "bytesTransferredIn": 0.0 if name != "PutObject" else float(
                                          self.r.randrange(10**6)),
                                      "AuthenticationMethod": "AuthHeader",
                                      "x-amz-id-2": base64.b64encode(self.r.randbytes(48)).decode(),
                                      "bytesTransferredOut": float(self.r.randrange(10**7))}
        rec["resources"] = [{"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::%s/%s" % (bucket, key)},
                            {"accountId": account, "type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::%s" % bucket}]
        rec["sharedEventID"] = self.uid() if self.r.random() < 0.1 else None
        if rec["sharedEventID"] is None:
            del rec["sharedEventID"]
        return rec

    def kms(self):
        account = self.r.choice(ACCOUNTS)
        svc = self.r.choice(["s3.amazonaws.com", "secretsmanager.amazonaws.com", "lambda.amazonaws.com",
                             "dynamodb.amazonaws.com"])
        role = self.r.choice(["app-backend-task-role", "lambda-ingest-exec"])
        ident = self.assumed(account, role, invoked_by=svc)
        region = self.r.choice(REGIONS)
        name = self.r.choice(["Decrypt", "Decrypt", "GenerateDataKey"])
        rec = self.base("kms.amazonaws.com", name, ident, account, region=region, src_ip=svc, ua=svc)
        rec.pop("tlsDetails", None)
        key = "arn:aws:kms:%s:%s:key/%s" % (region, account, self.uid())
        rec["requestParameters"] = {
            "encryptionContext": self.r.choice([
                {"aws:s3:arn": "arn:aws:s3:::prod-data-lake-%s/events/part-%s.parquet" % (account, self.hexs(20))},
                {"aws:lambda:FunctionArn": "arn:aws:lambda:%s:%s:function:ingest-%s"
                 % (region, account, self.hexs(6))}]),
            "encryptionAlgorithm": "SYMMETRIC_DEFAULT", "keyId": key}
        if name == "GenerateDataKey":
            rec["requestParameters"]["keySpec"] = "AES_256"
        rec["resources"] = [{"accountId": account, "type": "AWS::KMS::Key", "ARN": key}]
        return rec

    def sts_assume(self):
        account, ident = self.some_actor()
        target = self.r.choice(ACCOUNTS)
        role = self.r.choice(["OrganizationAccountAccessRole", "cross-account-readonly", "DatadogIntegrationRole",
                              "terraform-apply"])
        rec = self.base("sts.amazonaws.com", "AssumeRole", ident, account, ua=self.ua("sts.assume-role"))
        session = "%s-%d" % (role.lower(), self.r.randrange(10**9))
        rec["requestParameters"] = {"roleArn": "arn:aws:iam::%s:role/%s" % (target, role),
                                    "roleSessionName": session, "durationSeconds": 3600}
        rec["responseElements"] = {
            "credentials": {"accessKeyId": self.akid(), "sessionToken": base64.b64encode(
                self.r.randbytes(120)).decode(), "expiration": "Nov 28, 2026, 11:%02d:00 AM" % self.r.randrange(60)},
            "assumedRoleUser": {"assumedRoleId": "%s:%s" % (self.pid("AROA"), session),
                                "arn": "arn:aws:sts::%s:assumed-role/%s/%s" % (target, role, session)}}
        rec["resources"] = [{"accountId": target, "type": "AWS::IAM::Role",
                             "ARN": "arn:aws:iam::%s:role/%s" % (target, role)}]
        rec["sharedEventID"] = self.uid()
        return rec

    def ec2_describe(self):
        account, ident = self.some_actor()
        name = self.r.choice(["DescribeInstances", "DescribeSecurityGroups", "DescribeVolumes",
                              "DescribeNetworkInterfaces", "DescribeInstanceStatus", "DescribeSubnets"])
        rec = self.base("ec2.amazonaws.com", name, ident, account, ua=self.ua("ec2.describe-instances"))
        rec["requestParameters"] = {
            "filterSet": {"items": [{"name": "tag:kubernetes.io/cluster/prod-%s" % self.hexs(4),
                                     "valueSet": {"items": [{"value": "owned"}]}},
                                    {"name": "instance-state-name",
                                     "valueSet": {"items": [{"value": "running"}, {"value": "pending"}]}}]},
            "maxResults": 1000,
            "instancesSet": {"items": [{"instanceId": "i-0%s" % self.hexs(16)} for _ in range(self.r.randrange(1, 3))]}}
        return rec

    def ssm_secret(self):
        account, ident = self.some_actor()
        if self.r.random() < 0.5:
            rec = self.base("ssm.amazonaws.com", self.r.choice(["GetParameter", "GetParameters",
                                                                "GetParametersByPath"]),
                            ident, account, ua=self.ua("ssm.get-parameter"))
            rec["requestParameters"] = {"path": "/prod/app-%s/config/" % self.hexs(4), "recursive": True,
                                        "withDecryption": True, "maxResults": 10}
        else:
            rec = self.base("secretsmanager.amazonaws.com", "GetSecretValue", ident, account,
                            ua=self.ua("secretsmanager.get-secret-value"))
            rec["requestParameters"] = {"secretId": "arn:aws:secretsmanager:us-east-1:%s:secret:prod/db/%s-%s"
                                        % (account, self.hexs(8), self.hexs(6))}
        rec["resources"] = [{"accountId": account, "type": "AWS::SSM::Parameter",
                             "ARN": "arn:aws:ssm:us-east-1:%s:parameter/prod/app/%s" % (account, self.hexs(10))}]
        return rec

    def lambda_logs_ddb(self):
        account, ident = self.some_actor()
        kind = self.r.random()
        if kind < 0.35:
            rec = self.base("logs.amazonaws.com", self.r.choice(["CreateLogStream", "DescribeLogGroups",
                                                                 "FilterLogEvents"]),
                            ident, account, ua=self.ua("logs.filter-log-events"))
            rec["requestParameters"] = {"logGroupName": "/aws/lambda/ingest-%s" % self.hexs(6),
                                        "logStreamName": "2026/11/28/[$LATEST]%s" % self.hexs(32),
                                        "startTime": self.now_s * 1000 - 3600000, "interleaved": True}
        elif kind < 0.7:
            rec = self.base("dynamodb.amazonaws.com", self.r.choice(["DescribeTable", "ListTables",
                                                                     "DescribeContinuousBackups"]),
                            ident, account, ua=self.ua("dynamodb.describe-table"))
            rec["requestParameters"] = {"tableName": "sessions-%s" % self.hexs(6)}
            rec["resources"] = [{"accountId": account, "type": "AWS::DynamoDB::Table",
                                 "ARN": "arn:aws:dynamodb:us-east-1:%s:table/sessions-%s" % (account, self.hexs(6))}]
        else:
            rec = self.base("lambda.amazonaws.com", self.r.choice(["GetFunction20150331v2",
                                                                   "ListFunctions20150331",
                                                                   "GetFunctionConfiguration20150331v2"]),
                            ident, account, ua=self.ua("lambda.get-function"))
            rec["requestParameters"] = {"functionName": "arn:aws:lambda:us-east-1:%s:function:ingest-%s"
                                        % (account, self.hexs(6)), "qualifier": "$LATEST"}
        return rec

    def cloudwatch(self):
        account = self.r.choice(ACCOUNTS)
        rec = self.base("monitoring.amazonaws.com", self.r.choice(["GetMetricData", "DescribeAlarms",
                                                                   "ListMetrics"]),
                        self.assumed(account, "DatadogIntegrationRole"), account,
                        ua=self.ua("cloudwatch.get-metric-data"))
        rec["requestParameters"] = {
            "metricDataQueries": [{"id": "m%d" % i, "metricStat": {
                "metric": {"namespace": "AWS/EC2", "metricName": "CPUUtilization",
                           "dimensions": [{"name": "InstanceId", "value": "i-0%s" % self.hexs(16)}]},
                "period": 60, "stat": "Average"}, "returnData": True} for i in range(2)],
            "startTime": "Nov 28, 2026, 10:00:00 AM", "endTime": "Nov 28, 2026, 10:10:00 AM"}
        return rec

    # ---- near misses: pass the prefilter's eventSource test, fail the rule -----------------------
    def near_miss(self):
        k = self.r.randrange(9)
        acct, name = self.r.choice([(a, n) for (_, a, n) in self.discoverers])
        if k == 0:   # access denied
            rec = self.base("organizations.amazonaws.com", "ListAccounts", self.iam_user(acct, "intern-dev"),
                            acct, region="us-east-1", ua=self.ua("organizations.list-accounts"))
            rec["errorCode"] = "AccessDeniedException"
            rec["errorMessage"] = ("You don't have permissions to access this resource.")
        elif k == 1:  # console session (IAM dashboard calls GetAccountSummary all the time)
            rec = self.base("iam.amazonaws.com", "GetAccountSummary", self.assumed(acct, name, "alice@example.com"),
                            acct, region="us-east-1", ua=CONSOLE_UA)
            rec["sessionCredentialFromConsole"] = "true"
        elif k == 2:  # service hostname as sourceIPAddress: no source.ip
            rec = self.base("organizations.amazonaws.com", "DescribeOrganization",
                            self.assumed(acct, "AWSServiceRoleForSSO", invoked_by="sso.amazonaws.com"),
                            acct, region="us-east-1", src_ip="sso.amazonaws.com", ua="sso.amazonaws.com")
            rec.pop("tlsDetails", None)
        elif k == 3:  # AWS service actor
            rec = self.base("organizations.amazonaws.com", "ListAccounts",
                            self.aws_service("config.amazonaws.com"), MGMT_ACCOUNT, region="us-east-1",
                            src_ip="config.amazonaws.com", ua="config.amazonaws.com")
            rec.pop("tlsDetails", None)
        elif k == 4:  # iam ListPolicies is not organizations ListPolicies
            rec = self.base("iam.amazonaws.com", "ListPolicies", self.assumed(acct, name), acct,
                            region="us-east-1", ua=self.ua("iam.list-policies"))
            rec["requestParameters"] = {"scope": "Local", "onlyAttached": False, "maxItems": 100}
        elif k == 5:  # IAM Identity Center portal ListAccounts is not organizations ListAccounts
            rec = self.base("sso.amazonaws.com", "ListAccounts", self.assumed(acct, name), acct,
                            region="us-east-1", ua=CONSOLE_UA)
        elif k == 6:  # organizations actions the rule does not list
            rec = self.base("organizations.amazonaws.com",
                            self.r.choice(["DescribeAccount", "ListTagsForResource", "ListCreateAccountStatus",
                                           "ListHandshakesForAccount"]),
                            self.assumed(acct, name), acct, region="us-east-1",
                            ua=self.ua("organizations.describe-account"))
            rec["requestParameters"] = {"accountId": self.r.choice(ACCOUNTS)}
        else:        # everyday IAM reads
            rec = self.base("iam.amazonaws.com", self.r.choice(["GetRole", "ListRoles", "ListAttachedRolePolicies",
                                                                "GetPolicyVersion", "ListUsers"]),
                            self.assumed(acct, self.r.choice(["eks-node-group-role", "ci-deploy", name])),
                            acct, region="us-east-1", ua=self.ua("iam.get-role"))
            rec["requestParameters"] = {"roleName": self.r.choice(["OrganizationAccountAccessRole",
                                                                   "eks-node-group-role"])}
        return rec

    # ---- candidates --------------------------------------------------------------------------------
    def candidate(self, i):
        kind, acct, name = self.discoverers[i % len(self.discoverers)]
        ident = self.iam_user(acct, name) if kind == "IAMUser" else self.assumed(acct, name)
        if self.r.random() < 0.7:
            src = "organizations.amazonaws.com"
            action = self.r.choice(["ListAccounts", "DescribeOrganization", "ListRoots",
                                    "ListOrganizationalUnitsForParent", "ListAccountsForParent", "ListPolicies",
                                    "ListDelegatedAdministrators", "DescribeOrganizationalUnit",
                                    "ListAWSServiceAccessForOrganization"])
        else:
            src = "iam.amazonaws.com"
            action = self.r.choice(["ListAccountAliases", "GetAccountSummary"])
        cmd = "organizations.list-accounts" if src.startswith("org") else "iam.list-account-aliases"
        rec = self.base(src, action, ident, acct, region="us-east-1", ua=self.ua(cmd))
        if action in ("ListOrganizationalUnitsForParent", "ListAccountsForParent"):
            rec["requestParameters"] = {"parentId": "r-%s" % self.hexs(4)}
        elif action == "ListPolicies":
            rec["requestParameters"] = {"filter": "SERVICE_CONTROL_POLICY"}
        if self.r.random() < 0.3:
            rec["sessionCredentialFromConsole"] = "false"
        return rec, (acct, name)

    # ---- Mix B ---------------------------------------------------------------------------------------
    def candidate_b(self, i):
        """Mix B candidates: four principals, ListAccounts / DescribeOrganization / GetAccountSummary."""
        kind, acct, name = self.discoverers[i % 4]
        ident = self.iam_user(acct, name) if kind == "IAMUser" else self.assumed(acct, name)
        if self.r.random() < 0.7:
            src, action = "organizations.amazonaws.com", self.r.choice(["ListAccounts", "DescribeOrganization"])
            cmd = "organizations.list-accounts" if action == "ListAccounts" else "organizations.describe-organization"
        else:
            src, action, cmd = "iam.amazonaws.com", "GetAccountSummary", "iam.get-account-summary"
        rec = self.base(src, action, ident, acct, region="us-east-1", ua=self.ua(cmd))
        return rec, (acct, name)

    def iam_read_b(self):
        """iam.amazonaws.com reads the rule does not list: Terraform refreshes, AWS Config, CSPM scanners."""
        account = self.r.choice(ACCOUNTS)
        who = self.r.random()
        if who < 0.2:
            ident = self.assumed(account, "AWSServiceRoleForConfig", invoked_by="config.amazonaws.com")
            ua = src_ip = "config.amazonaws.com"
        else:
            ident = self.assumed(account, self.r.choice(["terraform-apply", "ci-deploy", "cspm-scanner",
                                                         "DatadogIntegrationRole"]))
            ua, src_ip = (TF_UA.format(m=self.r.randrange(10, 99)) if who < 0.7 else self.ua("iam.get-role")), None
        name = self.r.choice(["GetRole", "GetRole", "ListRoles"])
        rec = self.base("iam.amazonaws.com", name, ident, account, region="us-east-1", src_ip=src_ip, ua=ua)
        if src_ip:
            rec.pop("tlsDetails", None)
        if name == "GetRole":
            rec["requestParameters"] = {"roleName": self.r.choice(["OrganizationAccountAccessRole",
                                                                   "eks-node-group-role", "terraform-apply"])}
        else:
            rec["requestParameters"] = {"maxItems": 100, "pathPrefix": "/"}
        return rec

    def sts_assume_b(self):
        """AssumeRole with a long session token, often on behalf of `aws organizations list-accounts`."""
        rec = self.sts_assume()
        rec["responseElements"]["credentials"]["sessionToken"] = base64.b64encode(
            self.r.randbytes(self.r.randrange(360, 560))).decode()
        if self.r.random() < 0.5:
            rec["userAgent"] = self.ua("organizations.list-accounts")
        return rec

    def logs_lambda_b(self):
        for _ in range(50):  # lambda_logs_ddb without DynamoDB (not in Mix B's list)
            rec = self.lambda_logs_ddb()
            if rec["eventSource"] != "dynamodb.amazonaws.com":
                return rec
        return self.lambda_logs_ddb()

    def slim_b(self, rec):
        """Mix B records are leaner, as many real management events are: no resources list on reads that
        CloudTrail logs without one, one filter / metric query, and service callers without tlsDetails."""
        src = rec["eventSource"]
        if src in ("ec2.amazonaws.com", "ssm.amazonaws.com", "secretsmanager.amazonaws.com", "logs.amazonaws.com",
                   "monitoring.amazonaws.com", "lambda.amazonaws.com"):
            rec.pop("resources", None)
        rp = rec.get("requestParameters") or {}
        if "filterSet" in rp:
            rp["filterSet"]["items"] = rp["filterSet"]["items"][:1]
            rp.pop("instancesSet", None)
        if "metricDataQueries" in rp:
            rp["metricDataQueries"] = rp["metricDataQueries"][:1]
        if src == "s3.amazonaws.com":
            rec.pop("additionalEventData", None)
            rec["resources"] = rec["resources"][:1]
        return rec

    NOISE_B = [("s3_object", 20), ("kms", 18), ("sts_assume_b", 12), ("ec2_describe", 12), ("ssm_secret", 10),
               ("logs_lambda_b", 14), ("cloudwatch", 4)]

    def batch_b(self, body_index):
        recs, pairs = [], {}
        for i in range(CANDIDATES_PER_BODY):
            rec, pair = self.candidate_b(body_index * CANDIDATES_PER_BODY + i)
            recs.append(rec)
            pairs[rec["eventID"]] = pair
        recs += [self.iam_read_b() for _ in range(RECORDS_PER_BODY // 10)]
        total = sum(w for _, w in self.NOISE_B)
        while len(recs) < RECORDS_PER_BODY:
            x = self.r.randrange(total)
            for name, w in self.NOISE_B:
                if x < w:
                    rec = self.slim_b(getattr(self, name)())
                    if self.r.random() < 0.08 and rec["eventSource"] != "kms.amazonaws.com":
                        rec["userAgent"] = self.ua("organizations.list-accounts")
                    recs.append(rec)
                    break
                x -= w
        self.r.shuffle(recs)
        return recs, pairs

    NOISE = [("s3_object", 26), ("kms", 18), ("sts_assume", 10), ("ec2_describe", 12), ("ssm_secret", 10),
             ("lambda_logs_ddb", 15), ("cloudwatch", 4)]

    def noise(self):
        total = sum(w for _, w in self.NOISE)
        x = self.r.randrange(total)
        for name, w in self.NOISE:
            if x < w:
                return getattr(self, name)()
            x -= w
        raise AssertionError("unreachable")

    def batch(self, body_index):
        """RECORDS_PER_BODY records in a shuffled order, and {eventID: (account, user)} of the candidates."""
        recs, pairs = [], {}
        for i in range(CANDIDATES_PER_BODY):
            rec, pair = self.candidate(body_index * CANDIDATES_PER_BODY + i)
            recs.append(rec)
            pairs[rec["eventID"]] = pair
        n_near = RECORDS_PER_BODY * 4 // 100
        recs += [self.near_miss() for _ in range(n_near)]
        recs += [self.noise() for _ in range(RECORDS_PER_BODY - len(recs))]
        self.r.shuffle(recs)
        return recs, pairs

    def eventbridge(self, rec):
        return {"version": "0", "id": self.uid(), "detail-type": "AWS API Call via CloudTrail",
                "source": "aws." + rec["eventSource"].split(".")[0], "account": rec["recipientAccountId"],
                "time": rec["eventTime"], "region": rec["awsRegion"], "resources": [], "detail": rec}


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


def b64(data):
    return base64.b64encode(data).decode()


def firehose_body(g, records_data):
    return compact({"requestId": g.uid(), "timestamp": g.now_s * 1000,
                    "records": [{"data": b64(d)} for d in records_data]})


def cwl_records(g, recs):
    out = []
    for off in range(0, len(recs), CWL_RECORDS_PER_MESSAGE):
        chunk = recs[off:off + CWL_RECORDS_PER_MESSAGE]
        acct = chunk[0]["recipientAccountId"]
        msg = {"messageType": "DATA_MESSAGE", "owner": acct,
               "logGroup": "aws-cloudtrail-logs-%s-%s" % (acct, g.hexs(8)),
               "logStream": "%s_CloudTrail_us-east-1" % acct,
               "subscriptionFilters": ["newtermsd-firehose"],
               "logEvents": [{"id": "".join(g.r.choice("0123456789") for _ in range(56)),
                              "timestamp": g.now_s * 1000, "message": compact(r)} for r in chunk]}
        out.append(gzip.compress(compact(msg).encode(), compresslevel=6, mtime=0))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out"))
    ap.add_argument("--bodies", type=int, default=24, help="distinct deliveries per variant")
    ap.add_argument("--single", type=int, default=4000, help="single EventBridge events")
    ap.add_argument("--seed", type=int, default=20261128)
    args = ap.parse_args()
    if args.bodies < 1 or args.bodies > 1000 or args.single < 1 or args.single > 10**6:
        sys.exit("gen_deliveries: --bodies must be 1..1000 and --single 1..1000000")
    os.makedirs(args.out, exist_ok=True)
    g = Gen(args.seed, int(time.time()))
    pairs_all = set()
    sizes = {"record": 0, "eventbridge": 0, "n": 0}
    body_bytes = {"eb": 0, "bare": 0, "cwl": 0}
    files = {v: open(os.path.join(args.out, "firehose_%s.ndjson" % v), "w") for v in body_bytes}
    try:
        for b in range(args.bodies):
            recs, pairs = g.batch(b)
            pairs_all.update(pairs.values())
            raw = [compact(r).encode() for r in recs]
            ebs = [compact(g.eventbridge(r)).encode() for r in recs]
            sizes["record"] += sum(map(len, raw))
            sizes["eventbridge"] += sum(map(len, ebs))
            sizes["n"] += len(raw)
            for v, data in (("eb", ebs), ("bare", raw), ("cwl", cwl_records(g, recs))):
                body = firehose_body(g, data)
                body_bytes[v] += len(body)
                files[v].write(body + "\n")
    finally:
        for f in files.values():
            f.close()
    # Mix B: its own generator state, so adding it left the other variants byte for byte as they were
    gb = Gen(args.seed + 1, g.now_s)
    pairs_b, sizes_b, bytes_b, rec_b = set(), [], 0, 0
    with open(os.path.join(args.out, "firehose_mixb.ndjson"), "w") as f:
        for b in range(args.bodies):
            recs, pairs = gb.batch_b(b)
            pairs_b.update(pairs.values())
            ebs = [json.dumps(gb.eventbridge(r)).encode() for r in recs]
            sizes_b += [len(e) for e in ebs]
            rec_b += sum(len(json.dumps(r)) for r in recs)
            body = firehose_body(gb, ebs)
            bytes_b += len(body)
            f.write(body + "\n")
    pairs_all.update(pairs_b)
    single_candidates = 0
    with open(os.path.join(args.out, "eventbridge.ndjson"), "w") as f:
        made = 0
        b = args.bodies
        while made < args.single:
            recs, pairs = g.batch(b)
            b += 1
            for r in recs[:args.single - made]:
                if r["eventID"] in pairs:
                    pairs_all.add(pairs[r["eventID"]])
                    single_candidates += 1
                f.write(compact(g.eventbridge(r)) + "\n")
            made += min(len(recs), args.single - made)
    manifest = {
        "seed": args.seed, "records_per_body": RECORDS_PER_BODY, "candidates_per_body": CANDIDATES_PER_BODY,
        "cwl_records_per_message": CWL_RECORDS_PER_MESSAGE, "bodies_per_variant": args.bodies,
        "single_events": args.single, "single_candidates": single_candidates,
        "mean_record_bytes": round(sizes["record"] / sizes["n"], 1),
        "mean_eventbridge_bytes": round(sizes["eventbridge"] / sizes["n"], 1),
        "mean_body_bytes": {v: round(n / args.bodies) for v, n in body_bytes.items()},
        "mixb": {"bodies": args.bodies, "records_per_body": RECORDS_PER_BODY,
                 "candidates_per_body": CANDIDATES_PER_BODY, "iam_other_per_body": RECORDS_PER_BODY // 10,
                 "mean_record_bytes": round(rec_b / len(sizes_b), 1),
                 "mean_eventbridge_bytes": round(sum(sizes_b) / len(sizes_b), 1),
                 "mean_body_bytes": round(bytes_b / args.bodies),
                 "candidate_pairs": sorted(list(p) for p in pairs_b)},
        "candidate_pairs": sorted(list(p) for p in pairs_all),
        "expected_alerts_fresh_redis": len(pairs_all),
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    print(json.dumps({k: manifest[k] for k in ("mean_record_bytes", "mean_eventbridge_bytes", "mean_body_bytes",
                                               "expected_alerts_fresh_redis", "mixb")}))


if __name__ == "__main__":
    main()
