import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

export interface NetworkProps {
  /** Use an existing VPC (it needs private subnets with egress) instead of creating one. */
  readonly vpc?: ec2.IVpc;
  /** @default 2 */
  readonly maxAzs?: number;
  /**
   * NAT gateways for the private subnets' egress (ECR pulls, Bedrock, the Cognito JWKS). One is cheaper; one per
   * AZ survives an AZ outage. @default 1
   */
  readonly natGateways?: number;
  /** @default one month */
  readonly flowLogRetention?: logs.RetentionDays;
}

/** The VPC of the speech service: public subnets for NAT only, private subnets for the NLB and the tasks. */
export class Network extends Construct {
  readonly vpc: ec2.IVpc;

  constructor(scope: Construct, id: string, props: NetworkProps = {}) {
    super(scope, id);
    if (props.vpc) {
      this.vpc = props.vpc;
      return;
    }
    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: props.maxAzs ?? 2,
      natGateways: props.natGateways ?? 1,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: 'private', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
      ],
    });
    vpc.addFlowLog('FlowLogs', {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(
        new logs.LogGroup(this, 'FlowLogGroup', { retention: props.flowLogRetention ?? logs.RetentionDays.ONE_MONTH }),
      ),
      trafficType: ec2.FlowLogTrafficType.REJECT,
    });
    this.vpc = vpc;
  }
}
